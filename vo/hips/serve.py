"""Serving the built HiPS on behalf of a caller: which ones they may see, their files, the HiPS list.

Visibility is the caller's survey list (:func:`vo.caller.surveys`, i.e. row-level security): a HiPS
is served only when its sub-survey is among the surveys the caller may read. A hidden HiPS and a
missing one (or a missing tile) are the same answer, None, so nobody learns what exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from vo.caller import Caller, surveys
from vo.hips.build import read_properties
from vo.ingest.obscore import survey_slug

__all__ = ["hips_list", "tile_file", "visible_hips"]

#: the files of a HiPS (HiPS 1.0 section 4): tiles, Allsky, properties, the coverage MOC
_FILE = re.compile(r"^(properties|Moc\.fits|Norder\d{1,2}/Allsky\.(fits|png)"
                   r"|Norder\d{1,2}/Dir\d{1,9}/Npix\d{1,12}\.(fits|png))$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")


async def visible_hips(pool: AsyncConnectionPool, caller: Caller, root: Path) -> list[str]:
    """The slugs of the built HiPS ``caller`` may see, sorted."""
    names = {survey_slug(s["name"], s["species"], s["transition"]) for s in await surveys(pool, caller)}
    return sorted(n for n in names if (root / n / "properties").is_file())


def tile_file(root: Path, slug: str, rel: str) -> Path | None:
    """The file ``rel`` (a HiPS path such as ``Norder3/Dir0/Npix42.png``) of HiPS ``slug`` under
    ``root``, or None when the name is not a HiPS file or it does not exist. Visibility is the
    caller's business (:func:`visible_hips`)."""
    if not _SLUG.match(slug) or not _FILE.match(rel):
        return None
    path = root / slug / rel
    return path if path.is_file() else None


def hips_list(root: Path, slugs: list[str], base_url: str) -> str:
    """The HiPS list (HiPS 1.0 section 4.4.4): each HiPS's properties with its ``hips_service_url``,
    records separated by a blank line."""
    records = []
    for slug in slugs:
        props = read_properties(root / slug / "properties")
        props.pop("vlkb_source_digest", None)
        props["ID"] = props.get("creator_did", slug).removeprefix("ivo://")
        props["hips_service_url"] = f"{base_url}/hips/{slug}"
        records.append("".join(f"{k:<24}= {v}\n" for k, v in props.items()))
    return "\n".join(records)
