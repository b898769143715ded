"""What ``GET /sfind/apps`` and ``GET /sfind/apps/{app}`` answer: JSON documents and an HTML page.

The HTML is built with :mod:`html` escaping from the same dictionaries as the JSON, so the two
never disagree.
"""

from __future__ import annotations

import html

from vo.sfind.registry import find_app, finders

__all__ = ["app_description", "app_list", "apps_html", "description_html"]


def app_list(base_url: str) -> dict[str, object]:
    """Every app with its title, version and the URL of its description."""
    return {"apps": [{"name": f.name, "title": f.title, "version": f.version(),
                      "url": f"{base_url}/sfind/apps/{f.name}"} for f in finders().values()],
            "jobs": f"{base_url}/sfind/async"}


def app_description(name: str) -> dict[str, object]:
    """One app and every option it takes (NotFoundError for an unknown app)."""
    f = find_app(name)
    return {"name": f.name, "title": f.title, "version": f.version(),
            "options": [o.describe() for o in f.options()]}


_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#eee}")


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def apps_html(doc: dict[str, object]) -> str:
    esc = html.escape
    rows = "".join(f"<tr><td><a href=\"{esc(str(a['url']))}\">{esc(str(a['name']))}</a></td>"
                   f"<td>{esc(str(a['title']))}</td><td>{esc(str(a['version']))}</td></tr>"
                   for a in doc["apps"])  # type: ignore[attr-defined]
    body = (f"<p>Source finders that run as UWS jobs at <code>{esc(str(doc['jobs']))}</code>.</p>"
            f"<table><tr><th>app</th><th>what it does</th><th>version</th></tr>{rows}</table>")
    return _page("vlkb source finding: apps", body)


def description_html(doc: dict[str, object]) -> str:
    esc = html.escape
    head = ("<tr><th>option</th><th>type</th><th>default</th><th>min</th><th>max</th><th>allowed</th>"
            "<th>unit</th><th>advanced</th><th>description</th></tr>")

    def cell(v: object) -> str:
        return "" if v is None or v == [] else esc(", ".join(v) if isinstance(v, list) else str(v))

    rows = "".join("<tr>" + "".join(f"<td>{cell(o[k])}</td>" for k in (
        "name", "type", "default", "min", "max", "allowed", "unit", "advanced", "description")) + "</tr>"
        for o in doc["options"])  # type: ignore[attr-defined]
    body = (f"<p>{esc(str(doc['title']))} ({esc(str(doc['version']))}).</p>"
            f"<p>Give options as job parameters named as below, e.g. <code>APP={esc(str(doc['name']))}</code>.</p>"
            f"<table>{head}{rows}</table>")
    return _page(f"vlkb source finding: {doc['name']}", body)
