"""The parameters of a source-finding job (``/sfind/async``), read once and checked before any pixel.

``APP`` names the finder; ``ID`` gives one or more ObsCore publisher DIDs (the tiles), or
``UPLOAD=name,param:part`` one FITS image sent with the job (DALI 1.1 section 3.4.5, the syntax of
TAP uploads; the router keeps its bytes with the job, the runner reads it); an optional
region in SODA syntax (``POS``, ``CIRCLE`` or ``POLYGON`` with ``POSSYS``) and, for cubes, ``BAND``
or ``VELO`` (the range collapsed to a moment-0 map) are handed to the cutout engine as they are.
Every other parameter is an option of the app, validated against its description.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vo.dali import DaliParams
from vo.errors import UsageError
from vo.sfind.options import OptionValue, validate_options
from vo.sfind.registry import find_app
from vo.upload import UploadRef, parse_upload

__all__ = ["CUT_PARAMS", "SfindParams", "upload_name", "upload_ref"]

#: the parameters passed to the cutout engine for every tile
CUT_PARAMS = ("POS", "CIRCLE", "POLYGON", "POSSYS", "BAND", "VELO")
#: parameters of the job or of UWS itself, never options of an app
_RESERVED = {"APP", "ID", "UPLOAD", "RUNID", "PHASE", "REQUEST", "FORMAT", "RESPONSEFORMAT", "EXECUTIONDURATION",
             "DESTRUCTION", "QUOTE", "WAIT", "XMATCH", *CUT_PARAMS,
             # the catalogue kept as a user table (vo/jobs/save_as.py)
             "SAVE_AS", "SAVE_AS_GROUPS"}


@dataclass(frozen=True)
class SfindParams:
    """A checked source-finding request."""

    app: str
    ids: tuple[str, ...]
    #: the region and spectral parameters, as given, for :class:`vo.soda.SodaParams`
    cut: dict[str, list[str]]
    options: dict[str, OptionValue]
    #: cross-match with the knowledge base's band catalogue
    xmatch: bool = True
    #: the name of the uploaded image (UPLOAD=name,param:part) searched instead of archived datasets
    upload: str | None = None

    @classmethod
    def from_params(cls, raw: Mapping[str, list[str]], *, max_tiles: int) -> SfindParams:
        p = DaliParams(raw)
        finder = find_app(p.required("APP", "give the finder to run (GET /sfind/apps lists them)"))
        ids = tuple(dict.fromkeys(p.repeated("ID")))
        upload = upload_name(p.repeated("UPLOAD"))
        if upload is not None:
            if ids:
                raise UsageError("UPLOAD: give archived datasets (ID) or an uploaded image (UPLOAD), not both")
            ids = (f"upload:{upload}",)
        if not ids:
            raise UsageError("ID: missing; give the publisher DID of each image to search")
        if len(ids) > max_tiles:
            raise UsageError(f"ID: {len(ids)} images given; at most {max_tiles} per job")
        shapes = [n for n in ("POS", "CIRCLE", "POLYGON") if p.repeated(n)]
        if len(shapes) > 1 or (shapes and len(p.repeated(shapes[0])) > 1):
            raise UsageError(f"{shapes[0]}: give one region per job")
        cut = {n: p.repeated(n) for n in CUT_PARAMS if p.repeated(n)}
        given: dict[str, str] = {}
        for name in p.raw:
            if name in _RESERVED:
                continue
            value = p.single(name)
            if value is not None:
                given[name] = value
        options = validate_options(finder.options(), given)
        return cls(app=finder.name, ids=ids, cut=cut, options=options, xmatch=p.flag("XMATCH", True), upload=upload)


def upload_ref(values: list[str]) -> UploadRef | None:
    """The one image of ``UPLOAD`` (``name,param:part``); None when there is none."""
    refs = parse_upload(values)
    if not refs:
        return None
    if len(refs) > 1 or refs[0].url is not None:
        raise UsageError("UPLOAD: give one FITS image sent with the request, as UPLOAD=image,param:<part> "
                         "(images by URL are not fetched)")
    return refs[0]


def upload_name(values: list[str]) -> str | None:
    ref = upload_ref(values)
    return None if ref is None else ref.name
