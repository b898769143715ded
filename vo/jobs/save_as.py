"""``SAVE_AS``: a job's table result kept as a persistent user table (issue 17; docs/user-tables.md).

``SAVE_AS=user_<name>.<table>`` (with optional ``SAVE_AS_GROUPS=g1,g2``, the groups that may read
it) is a parameter of the source-finding and stamps jobs. The runners check it when the job
starts, before any work (:meth:`SaveAs.check`: an authenticated owner, their own schema, a valid
name not taken yet), and save the table once their results are written (:meth:`SaveAs.save`),
through :func:`vo.usertables.create_blocking`: the same rules and quota as ``PUT /tap/tables``,
nothing written when a check fails. What was saved is recorded as :meth:`SaveAs.record` (the
sfind ``report``'s ``saved_as``, the stamps ``saved_as`` result).

The quota is the one in force when the job was accepted (:func:`terms`, kept with the job as
``ctx.terms``), not that of whichever process happens to run it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from vo.dali import DaliParams
from vo.errors import UsageError
from vo.usertables import Limits, check_new_blocking, create_blocking, read_groups
from vo.uws.context import RunContext

__all__ = ["SaveAs", "terms"]

#: the name of the user-table quota in a job's terms
_QUOTA = "user_tables"
#: the refusal of a runner given no user-table quota
_NO_TABLES = "SAVE_AS: this service does not save job results as user tables"


def terms(limits: Limits) -> dict[str, Any]:
    """The terms to keep with a job that may save a table: the user-table quota now in force."""
    return {_QUOTA: asdict(limits)}


def _quota(ctx: RunContext, limits: Limits) -> Limits:
    """The quota the job was accepted under; ``limits`` (the running process's) for a job
    accepted without one, or for a bound its terms do not name."""
    kept = ctx.terms.get(_QUOTA)
    if not isinstance(kept, Mapping):
        return limits
    return Limits(**{name: int(kept.get(name, getattr(limits, name))) for name in Limits.__dataclass_fields__})


@dataclass(frozen=True)
class SaveAs:
    """Where a job saves its table, and who may read it besides the owner."""

    table: str
    groups: tuple[str, ...] = ()
    #: the user-table quota the table is saved under (set by :meth:`at_start`)
    limits: Limits | None = None

    @classmethod
    def from_params(cls, raw: Mapping[str, list[str]]) -> SaveAs | None:
        """``SAVE_AS`` and ``SAVE_AS_GROUPS`` of the job's parameters; None when not asked."""
        p = DaliParams(dict(raw))
        table = p.single("SAVE_AS")
        if table is None or not table.strip():
            return None
        return cls(table.strip(), read_groups(p.repeated("SAVE_AS_GROUPS"), "SAVE_AS_GROUPS"))

    @classmethod
    def at_start(cls, raw: Mapping[str, list[str]], ctx: RunContext, limits: Limits | None) -> SaveAs | None:
        """The job's ``SAVE_AS``, checked as the job starts (None when not asked); ``limits``: the
        user-table quota the runner was given (None: this runner saves no tables), which the
        quota kept with the job (``ctx.terms``) overrides."""
        target = cls.from_params(raw)
        if target is None:
            return None
        if limits is None:
            raise UsageError(_NO_TABLES)
        target.check(ctx)
        return replace(target, limits=_quota(ctx, limits))

    def check(self, ctx: RunContext) -> None:
        """Refuse now (UsageError, AuthError) what :meth:`save` would refuse for the name."""
        with ctx.connect() as conn:
            check_new_blocking(conn, ctx.caller, self.table)

    def save(self, ctx: RunContext, votable: bytes, description: str) -> dict[str, object]:
        """Create the table from the job's VOTable; :meth:`record` of what was made."""
        if self.limits is None:
            raise UsageError(_NO_TABLES)
        entry = create_blocking(ctx.conninfo, ctx.caller, self.table, votable, "votable", self.limits,
                                groups=self.groups, description=description)
        return self.record(entry.decl.qualified_name, entry.nrows, entry.read_groups)

    @staticmethod
    def record(table: str, rows: int, groups: tuple[str, ...] | list[str]) -> dict[str, object]:
        """What the job's results say of the saved table: its name (query it in ADQL), rows and readers."""
        return {"table": table, "rows": rows, "read_groups": list(groups)}
