"""Serving the built HiPS on behalf of a caller: which ones they may see, their files, the HiPS list.

Visibility is the caller's survey list (:func:`vo.caller.surveys`, i.e. row-level security): a HiPS
is served only when its sub-survey is among the surveys the caller may read. A hidden HiPS and a
missing one (or a missing tile) are the same answer, None, so nobody learns what exists.

Aladin Lite asks for dozens of tiles a second, and the survey lookup (a database round trip) costs
more than sending a tile: :class:`VisibilityCache` keeps each set of groups' answer for a few
seconds (``VLKB_HIPS_VISIBILITY_TTL``). Only the answer of the same row-level-security lookup is
kept, keyed by exactly what that lookup depends on (the groups), so the cache can be late by its TTL
after a policy change but never answers for other groups.
"""

from __future__ import annotations

import functools
import io
import re
import time
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from vo.caller import Caller, surveys
from vo.hips.build import read_properties
from vo.ingest.obscore import survey_slug

__all__ = ["VisibilityCache", "blank_tile", "hips_list", "tile_file", "visible_hips"]

#: the files of a HiPS (HiPS 1.0 section 4): tiles, Allsky, properties, the coverage MOC
_FILE = re.compile(r"^(properties|Moc\.fits|Norder\d{1,2}/Allsky\.(fits|png)"
                   r"|Norder\d{1,2}/Dir\d{1,9}/Npix\d{1,12}\.(fits|png))$")
_PNG_TILE = re.compile(r"^Norder(\d{1,2})/Dir\d{1,9}/Npix\d{1,12}\.png$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")


async def visible_hips(pool: AsyncConnectionPool, caller: Caller, root: Path) -> list[str]:
    """The slugs of the built HiPS ``caller`` may see, sorted."""
    names = {survey_slug(s["name"], s["species"], s["transition"]) for s in await surveys(pool, caller)}
    return sorted(n for n in names if (root / n / "properties").is_file())


class VisibilityCache:
    """:func:`visible_hips` answers kept ``ttl`` seconds per set of caller groups (0: not kept).

    The surveys a caller may read depend on their groups only (``vlkb_hidden_surveys()`` in
    db/sql/access.sql), so the groups are the key; at most ``max_entries`` sets are kept (the
    oldest answers are dropped first). Not shared between processes: each worker keeps its own.
    """

    def __init__(self, ttl: float, max_entries: int = 1024) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._answers: dict[tuple[str, ...], tuple[float, list[str]]] = {}

    async def visible(self, pool: AsyncConnectionPool, caller: Caller, root: Path) -> list[str]:
        """The slugs ``caller`` may see, from the cache while fresh, else looked up (and kept)."""
        if self.ttl <= 0:
            return await visible_hips(pool, caller, root)
        key = tuple(sorted(set(caller.groups)))
        now = time.monotonic()
        hit = self._answers.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        slugs = await visible_hips(pool, caller, root)
        if len(self._answers) >= self.max_entries:
            for old in sorted(self._answers, key=lambda k: self._answers[k][0])[: self.max_entries // 4 or 1]:
                del self._answers[old]
        self._answers[key] = (time.monotonic() + self.ttl, slugs)
        return slugs


def tile_file(root: Path, slug: str, rel: str) -> Path | None:
    """The file ``rel`` (a HiPS path such as ``Norder3/Dir0/Npix42.png``) of HiPS ``slug`` under
    ``root``, or None when the name is not a HiPS file or it does not exist. Visibility is the
    caller's business (:func:`visible_hips`)."""
    if not _SLUG.match(slug) or not _FILE.match(rel):
        return None
    path = root / slug / rel
    return path if path.is_file() else None


@functools.cache
def _blank_png(width: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("LA", (width, width), (0, 0)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def blank_tile(root: Path, slug: str, rel: str) -> bytes | None:
    """A fully transparent PNG for a PNG tile of HiPS ``slug`` that has no data (inside the sky, at an
    order the HiPS has), or None when ``rel`` is not such a tile.

    Aladin Lite asks for every tile in view at low orders whatever the HiPS covers; a transparent tile
    says "no data here" as well as a 404 does (HiPS 1.0 section 4.2.2) without the browser logging each
    miss as an error.
    """
    m = _PNG_TILE.match(rel)
    props = root / slug / "properties"
    if not _SLUG.match(slug) or m is None or not props.is_file():
        return None
    meta = read_properties(props)
    if int(m.group(1)) > int(meta.get("hips_order", "0")):
        return None
    return _blank_png(int(meta.get("hips_tile_width", "512")))


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
