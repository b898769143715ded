"""DALI 1.1 examples at /tap/examples: the XHTML+RDFa document, its capability, every query run
through /tap/sync against the demo data, and taplint's EXA stage as the referee."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest
from lxml import etree

from tests.conformance.test_taplint import problems
from tests.xsd import assert_valid
from vo.examples import EXAMPLES, EXAMPLES_VOCAB

XHTML = "http://www.w3.org/1999/xhtml"
CAPS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
TAPREGEXT = "http://www.ivoa.net/xml/TAPRegExt/v1.0"
VS = "http://www.ivoa.net/xml/VODataService/v1.1"
VOT = "http://www.ivoa.net/xml/VOTable/v1.3"
STD_EXAMPLES = "ivo://ivoa.net/std/DALI#examples"


def served_examples(url: str) -> dict[str, etree._Element]:
    """The example elements of the document at ``url``, by id."""
    resp = httpx.get(url, timeout=30)
    resp.raise_for_status()
    root = etree.fromstring(resp.content)
    return {el.get("id"): el for el in root.iter() if el.get("typeof") == "example"}


def prop_texts(example: etree._Element, name: str) -> list[str]:
    return [el.text or "" for el in example.iter() if el.get("property") == name]


@pytest.fixture(scope="module")
def examples(server) -> dict[str, etree._Element]:
    return served_examples(server.url + "/tap/examples")


def test_examples_document_is_xhtml_rdfa(http: httpx.Client) -> None:
    resp = http.get("/tap/examples")
    assert resp.status_code == 200
    assert resp.headers["content-type"].split(";")[0] in ("application/xhtml+xml", "text/html")
    root = etree.fromstring(resp.content)
    assert root.tag == f"{{{XHTML}}}html"
    # DALI 1.1 section 2.3: one vocab attribute, the examples vocabulary
    assert [el.get("vocab") for el in root.iter() if el.get("vocab") is not None] == [EXAMPLES_VOCAB]
    found = [el for el in root.iter() if el.get("typeof") == "example"]
    assert len(found) == len(EXAMPLES) >= 14
    ids = [el.get("id") for el in found]
    assert len(set(ids)) == len(ids)
    for el in found:
        assert el.get("resource") == "#" + el.get("id")
        assert len(prop_texts(el, "name")) == 1
        assert len(prop_texts(el, "query")) == 1
        assert prop_texts(el, "table"), el.get("id")
        # taplint: property values are plain text, never markup
        for prop in el.iter():
            if prop.get("property") is not None:
                assert len(prop) == 0, (el.get("id"), prop.get("property"))


def test_capabilities_declare_examples(http: httpx.Client, server) -> None:
    resp = http.get("/tap/capabilities")
    root = assert_valid(resp.content, CAPS, TAPREGEXT, VS)
    caps = [c for c in root.iter("capability") if c.get("standardID") == STD_EXAMPLES]
    assert len(caps) == 1
    assert [a.text for a in caps[0].iter("accessURL")] == [server.url + "/tap/examples"]


def test_example_tables_are_published(examples: dict[str, etree._Element], http: httpx.Client) -> None:
    for ex_id, el in examples.items():
        for table in prop_texts(el, "table"):
            assert http.get(f"/tap/tables/{table}").status_code == 200, (ex_id, table)


@pytest.mark.parametrize("ex_id", [ex.id for ex in EXAMPLES])
def test_example_query_returns_rows(ex_id: str, examples: dict[str, etree._Element], http: httpx.Client) -> None:
    (query,) = prop_texts(examples[ex_id], "query")
    resp = http.post(
        "/tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "votable/td", "MAXREC": "50",
                           "QUERY": query},
    )
    assert resp.status_code == 200, resp.text[:1000]
    root = etree.fromstring(resp.content)
    statuses = [i.get("value") for i in root.iter(f"{{{VOT}}}INFO") if i.get("name") == "QUERY_STATUS"]
    assert statuses and "ERROR" not in statuses, resp.text[:1000]
    assert len(root.findall(f".//{{{VOT}}}TR")) >= 1, f"{ex_id} returned no rows"


def test_taplint_examples_stage_clean(server) -> None:
    stilts = shutil.which("stilts")
    if stilts is None:
        pytest.fail("stilts is not installed: run `make setup`")
    # EXA alone ends in F-EXA-NOTM (no table metadata): TME gives it the tables and CAP the
    # declared capability, so table names and ADQL symbols are checked too. S for the summary.
    proc = subprocess.run(
        [stilts, "taplint", f"tapurl={server.url}/tap", "stages=TME CAP EXA", "report=EWFS", "maxrepeat=3"],
        capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    found = problems(out)  # less the reports accepted by decision (tests/conformance/test_taplint.py)
    assert not found, "taplint reported:\n" + "\n".join(found)
    assert f"Found {len(EXAMPLES)} examples in 1 document" in out, out[-2000:]
    assert f"Execution success/attempt: {len(EXAMPLES)}/{len(EXAMPLES)}" in out, out[-2000:]
