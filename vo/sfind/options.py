"""The options a finder describes, and their validation against what a user sent.

An :class:`Option` is what ``GET /sfind/apps/{app}`` shows (name, type, default, min, max,
allowed values, unit, description, advanced) and what a job's parameters are checked against:
an unknown option, a value of the wrong type or outside its range is a :class:`UsageError`
naming the option, so the job ends in ERROR with that message before any pixel is read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from vo.errors import UsageError

__all__ = ["Option", "OptionValue", "validate_options"]

OptionValue = int | float | bool | str
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class Option:
    """One option of a finder, as described to users and checked at job start."""

    name: str
    type: Literal["int", "float", "bool", "str"]
    default: OptionValue
    description: str
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] = ()
    unit: str = ""
    advanced: bool = False

    def describe(self) -> dict[str, object]:
        """The JSON form of the option (``/sfind/apps/{app}``)."""
        out = asdict(self)
        out["allowed"] = list(self.allowed)
        return out

    def parse(self, text: str) -> OptionValue:
        """The value of ``text`` for this option; UsageError naming the option otherwise."""
        value: OptionValue
        text = text.strip()
        if self.type == "bool":
            if text.lower() not in _TRUE + _FALSE:
                raise UsageError(f"{self.name}: expected true or false, got {text!r}")
            return text.lower() in _TRUE
        if self.type == "str":
            if self.allowed and text not in self.allowed:
                raise UsageError(f"{self.name}: expected one of {', '.join(self.allowed)}, got {text!r}")
            return text
        try:
            value = int(text) if self.type == "int" else float(text)
        except ValueError:
            raise UsageError(f"{self.name}: expected {'an integer' if self.type == 'int' else 'a number'}, "
                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise UsageError(f"{self.name}: expected a finite number, got {text!r}")
        if self.min is not None and value < self.min:
            raise UsageError(f"{self.name}: {value} is below the minimum {self.min:g}")
        if self.max is not None and value > self.max:
            raise UsageError(f"{self.name}: {value} is above the maximum {self.max:g}")
        return value


def validate_options(options: Sequence[Option], given: Mapping[str, str]) -> dict[str, OptionValue]:
    """Every option's value: ``given`` (case-insensitive names) parsed, defaults for the rest.

    A name that is not an option of the finder is a UsageError listing the ones it has.
    """
    by_name = {o.name.lower(): o for o in options}
    unknown = sorted(k for k in given if k.lower() not in by_name)
    if unknown:
        raise UsageError(f"{unknown[0].lower()}: not an option of this app; its options are "
                         f"{', '.join(o.name for o in options)}")
    values = {o.name: o.default for o in options}
    for key, text in given.items():
        option = by_name[key.lower()]
        values[option.name] = option.parse(text)
    return values
