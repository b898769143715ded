"""DALI 1.1 parameters shared by every protocol (TAP, SIA, SODA): MAXREC."""

from __future__ import annotations

from vo.errors import UsageError

__all__ = ["parse_maxrec"]


def parse_maxrec(text: str | None, *, default: int, limit: int) -> int:
    """MAXREC (DALI 1.1 section 3.2.3): absent → ``default``; capped at ``limit``; not negative."""
    if text is None:
        return min(default, limit)
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"MAXREC: not an integer: {text!r}") from None
    if value < 0:
        raise UsageError(f"MAXREC: must not be negative, got {value}")
    return min(value, limit)
