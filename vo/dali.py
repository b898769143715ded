"""DALI 1.1 parameters (section 3): the one reader of request parameters every protocol uses.

TAP, SIA, SODA, DataLink, MOC, UWS (:mod:`vo.uws.control`) and the legacy ViaLactea API read
their parameters through :class:`DaliParams`, so one rule holds everywhere (docs/parameters.md):

- names are case-insensitive (DALI 1.1 section 3.1); values are kept as sent, only enumerated
  keywords (POSSYS, LANG, REQUEST, RESPONSEFORMAT names, UWS phases, booleans) ignore case;
- values are read without surrounding whitespace (TAP's QUERY excepted: it is kept as sent, and
  its length bound counts every character sent), and a blank value counts as absent;
- a NUL character in a value is a UsageError naming the parameter (``app.params`` refuses it on
  entry; this refuses it again in values that come another way, such as stored job parameters);
- a single-valued parameter given more than once (blank values aside, even twice the same value)
  is an error naming it (DALI 1.1 section 3.2; SODA 1.0 section 3.2 calls a parameter specified
  several times multi-valued and answers MultiValuedParamNotSupported, every other protocol a
  UsageError); repeatable parameters keep every value, in order;
- unknown parameters are ignored (TAP 1.1 section 2.3).

Every error message starts with the parameter's name. No HTTP here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vo.errors import UsageError
from vo.votable.writers import ResultFormat, resolve_format

__all__ = ["POSSYS", "DaliParams", "refuse_nul"]

#: the frames of POS, CIRCLE and POLYGON (the vlkb extension POSSYS of SIA and SODA)
POSSYS = ("ICRS", "GALACTIC")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def refuse_nul(name: str, value: str) -> None:
    """UsageError when ``value`` (of the parameter ``name``) holds a NUL, which PostgreSQL text cannot store."""
    if "\x00" in value:
        raise UsageError(f"{name}: the value contains a NUL character")


class DaliParams:
    """A request's parameters by case-folded name; each read applies the rules of the module."""

    def __init__(self, raw: Mapping[str, Sequence[str]], *,
                 repeat_error: type[UsageError] = UsageError) -> None:
        self.raw: dict[str, list[str]] = {}
        for name, values in raw.items():
            self.raw.setdefault(name.upper(), []).extend(values)
        self.repeat_error = repeat_error

    def repeated(self, name: str, *, strip: bool = True) -> list[str]:
        """Every value of ``name``, in order, blanks dropped; stripped unless ``strip`` is false."""
        values = self.raw.get(name.upper(), [])
        for value in values:
            refuse_nul(name, value)
        return [v.strip() if strip else v for v in values if v.strip()]

    def single(self, name: str, *, strip: bool = True) -> str | None:
        """The one value of ``name``; None when absent."""
        values = self.repeated(name, strip=strip)
        if len(values) > 1:
            raise self.repeat_error(f"{name}: given {len(values)} values; it takes one")
        return values[0] if values else None

    def required(self, name: str, hint: str, *, strip: bool = True) -> str:
        """The one value of ``name``; ``NAME: missing; hint`` when absent."""
        value = self.single(name, strip=strip)
        if value is None:
            raise UsageError(f"{name}: missing; {hint}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean (DALI 1.1 section 3.3.3: true/false, 1/0; yes/no too), ``default`` when absent."""
        value = self.single(name)
        if value is None:
            return default
        if value.lower() not in _TRUE + _FALSE:
            raise UsageError(f"{name}: expected true or false, got {value!r}")
        return value.lower() in _TRUE

    def natural(self, name: str) -> int | None:
        """A whole number, not negative; None when absent."""
        text = self.single(name)
        if text is None:
            return None
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{name}: not an integer: {text!r}") from None
        if value < 0:
            raise UsageError(f"{name}: must not be negative, got {value}")
        return value

    def maxrec(self, default: int, limit: int) -> int:
        """MAXREC (DALI 1.1 section 3.2.3): ``default`` when absent, capped at ``limit``."""
        value = self.natural("MAXREC")
        return min(default if value is None else value, limit)

    def response_format(self, default: str, *, legacy: str | None = None) -> ResultFormat:
        """RESPONSEFORMAT (DALI 1.1 section 3.2.2; ``legacy`` names an older spelling read when it is
        absent, TAP 1.0's FORMAT), as one of the writers' formats; ``default`` when neither is given."""
        text = self.single("RESPONSEFORMAT")
        if text is None and legacy is not None:
            text = self.single(legacy)
        return resolve_format(text or default)

    def possys(self) -> str:
        """POSSYS, upper-cased: ICRS (the default) or GALACTIC."""
        frame = (self.single("POSSYS") or "ICRS").upper()
        if frame not in POSSYS:
            raise UsageError(f"POSSYS: unknown coordinate system {frame!r}; expected ICRS or GALACTIC")
        return frame
