"""The ``vlkb`` command line: run the service, manage its database, load data.

Every failure an operator can fix is printed as one line saying what to do (exit code 1),
never as a traceback.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import psycopg
import typer
from pydantic import ValidationError

from app.database import cluster_for, database_url
from app.settings import Settings
from db.cluster import ClusterError, find_bindir, port_free
from db.pgsphere import find_script
from vo.uws.liveness import pid_alive

__all__ = ["main"]

cli = typer.Typer(help="vlkb: IVOA data service for Galactic-plane surveys.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
db_cli = typer.Typer(help="The service database (embedded cluster or VLKB_DATABASE_URL).", no_args_is_help=True)
ingest_cli = typer.Typer(help="Load FITS datasets and catalogues.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(ingest_cli, name="ingest")
policy_cli = typer.Typer(help="Survey access policies: public, or restricted to groups.", no_args_is_help=True)
cli.add_typer(policy_cli, name="policy")
hips_cli = typer.Typer(help="HiPS of the 2D surveys, served at /hips.", no_args_is_help=True)
cli.add_typer(hips_cli, name="hips")

T = TypeVar("T")


def _first_line(exc: BaseException) -> str:
    """The first line of an error's text (its type's name when it has none)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _fail(message: str) -> typer.Exit:
    typer.secho(f"vlkb: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(1)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise _fail(f"bad setting VLKB_{field.upper()}: {first['msg']}") from None


@contextmanager
def _operator_errors() -> Iterator[None]:
    """Turn the errors an operator can fix into one clear line."""
    try:
        yield
    except ClusterError as exc:
        raise _fail(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise _fail(f"database unreachable ({_first_line(exc)}): start it with `vlkb db start`, "
                    "or check VLKB_DATABASE_URL") from None
    except psycopg.Error as exc:
        raise _fail(f"database error: {_first_line(exc)}") from None
    except PermissionError as exc:
        raise _fail(f"permission denied on {exc.filename}: check VLKB_HOME and file permissions") from None


def _repair_pgsphere(settings: Settings) -> None:
    """Repair Debian's pgSphere install script when needed and possible (see db/pgsphere.py)."""
    script = find_script(find_bindir(settings.pg_bindir))
    if script is None:
        raise ClusterError("pgSphere is not installed: run `make setup` (apt-get install postgresql-15-pgsphere)")
    if script.needs_repair():
        if not os.access(script.path, os.W_OK):
            raise ClusterError(
                f"{script.path} needs the pgSphere repair and is not writable: run `sudo vlkb db repair-pgsphere`"
            )
        script.repair()
        typer.echo(f"repaired the pgSphere install script {script.path} (legacy DaCHS operators)")


def _ensure_database(settings: Settings) -> str:
    """Start the embedded cluster if that is the configuration, migrate, and return the URL."""
    if settings.embedded:
        _repair_pgsphere(settings)
        cluster_for(settings).start()
    url = database_url(settings)
    from db.migrate import migrate

    migrate(url)
    return url


@db_cli.command("start")
def db_start() -> None:
    """Create (first time) and start the embedded PostgreSQL cluster, then migrate."""
    settings = _settings()
    if not settings.embedded:
        raise _fail("VLKB_DATABASE_URL is set: the database is external, there is nothing to start")
    with _operator_errors():
        _ensure_database(settings)
        typer.echo(cluster_for(settings).status())


@db_cli.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL cluster."""
    settings = _settings()
    with _operator_errors():
        cluster_for(settings).stop()
        typer.echo(cluster_for(settings).status())


@db_cli.command("status")
def db_status() -> None:
    """Say whether the embedded cluster is running."""
    settings = _settings()
    if not settings.embedded:
        typer.echo("external database (VLKB_DATABASE_URL)")
        return
    with _operator_errors():
        typer.echo(cluster_for(settings).status())


@db_cli.command("migrate")
def db_migrate() -> None:
    """Upgrade the internal schema, create the published tables and refresh TAP_SCHEMA."""
    settings = _settings()
    with _operator_errors():
        from db.migrate import migrate

        migrate(database_url(settings))
        typer.echo("database is up to date")


@db_cli.command("repair-pgsphere")
def db_repair_pgsphere() -> None:
    """Repair Debian's pgSphere 1.2.0 install script so CREATE EXTENSION works (needs root)."""
    settings = _settings()
    with _operator_errors():
        script = find_script(find_bindir(settings.pg_bindir))
        if script is None:
            raise _fail("pgSphere is not installed: apt-get install postgresql-15-pgsphere")
        changed = script.repair()
        typer.echo(f"{script.path}: {'repaired' if changed else 'already fine'}")


def _load_demo(settings: Settings, url: str, scale: int, force: bool) -> None:
    from demo.load import demo_loaded, load_demo

    with psycopg.connect(url) as conn:
        if demo_loaded(conn) and not force:
            typer.echo("demo data already loaded (use --force to reload)")
            return
        report = load_demo(conn, settings.data_dir, scale=scale, authority=settings.authority)
    typer.echo(report)


@cli.command("demo-data")
def demo_data(
    scale: Annotated[int, typer.Option(help="Multiply catalogue sizes by this factor.")] = 0,
    force: Annotated[bool, typer.Option(help="Regenerate and reload even if present.")] = False,
) -> None:
    """Generate the deterministic demo data (FITS, catalogues, filaments) and load it."""
    settings = _settings()
    with _operator_errors():
        url = _ensure_database(settings)
        _load_demo(settings, url, scale or settings.demo_scale, force)


def _files(patterns: list[str], *, all_match: bool) -> list[str]:
    """The files the ``patterns`` (paths, fsspec URLs, globs) name; a pattern that names none stops
    the command when ``all_match``, else it is a warning."""
    from vo import storage

    files: list[str] = []
    for pattern in patterns:
        try:
            matched = storage.expand(pattern)
        except (OSError, ValueError, ImportError) as exc:  # unknown protocol, unreachable store
            raise _fail(f"cannot list {pattern}: {exc}") from None
        if not matched and all_match:
            raise _fail(f"no file matches {pattern}")
        if not matched:
            typer.secho(f"vlkb: no file matches {pattern}", err=True, fg=typer.colors.YELLOW)
        files += matched
    return files


def _refresh_mocs(settings: Settings, url: str, survey: str) -> int:
    """Rebuild the coverage MOCs of ``survey`` (``/moc``) after an ingest, as its readers see them."""
    import asyncio

    from psycopg_pool import AsyncConnectionPool

    from db.policies import list_policies
    from vo.caller import Caller
    from vo.moc import MocCache, refresh

    with psycopg.connect(url) as conn:
        groups = next((p.groups for p in list_policies(conn) if p.survey == survey), [])

    async def run() -> int:
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            return await refresh(pool, MocCache(settings.moc_cache_dir), survey, Caller(groups=tuple(groups)),
                                 settings.moc_order)

    return asyncio.run(run())


@ingest_cli.command("datasets")
def ingest_datasets(
    survey: Annotated[str, typer.Option(help="Survey name (obs_collection).")],
    paths: Annotated[list[str], typer.Argument(help="FITS files, fsspec URLs (s3://, https://...) or glob patterns.")],
    species: Annotated[str | None, typer.Option(
        help="Species of a line survey, e.g. 13CO (required for cubes); 2D maps without it are Continuum.")] = None,
    transition: Annotated[str | None, typer.Option(
        help="Transition or band, e.g. '70 um' or '1-0' (required; a missing one is suggested from the header).")]
    = None,
    groups: Annotated[str | None, typer.Option(
        help="Comma-separated groups that may read it; '' makes it public; not given: keep its policy.")] = None,
) -> None:
    """Ingest FITS images and cubes (headers only) into ivoa.obscore; bad files are reported and skipped."""
    from app.progress import file_progress
    from vo.ingest.datasets import MissingOptionError
    from vo.ingest.datasets import ingest_datasets as ingest
    from vo.preview import forget_previews

    settings = _settings()
    files = _files(paths, all_match=False)
    info = {"name": survey, "species": (species or "").strip() or None,
            "transition": (transition or "").strip() or None,
            "groups": None if groups is None else tuple(g.strip() for g in groups.split(",") if g.strip())}
    with _operator_errors():
        url = _ensure_database(settings)
        try:
            with psycopg.connect(url) as conn, file_progress(len(files), f"ingest {survey}") as advance:
                report = ingest(conn, info, files, authority=settings.authority, on_file=advance)
        except MissingOptionError as exc:
            raise _fail(str(exc)) from None
        for old, _ in report.replaced:
            forget_previews(settings.home / "cache" / "previews", old)
        typer.echo(report.summary())
        if report.stored:
            typer.echo(f"coverage MOCs of {survey}: {_refresh_mocs(settings, url, survey)} refreshed")
            if settings.hips_after_ingest:
                built = _build_hips(settings, url, survey)
                typer.echo(f"HiPS of {survey}: {len(built)} bands in {settings.hips_root}")
    if report.failed and not report.stored:
        raise typer.Exit(1)


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict; a malformed one stops the command."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise _fail(f"{option} takes NAME=VALUE, got {item!r}")
        out[name.strip()] = value
    return out


#: bad rows printed by ``vlkb ingest catalog`` (all of them go to --problems FILE)
_SHOWN_PROBLEMS = 100


@ingest_cli.command("catalog")
def ingest_catalog(
    table: Annotated[str, typer.Argument(help="Published table, schema.table (e.g. compactsources.band70um).")],
    paths: Annotated[list[str], typer.Argument(
        help="FITS tables, VOTables, CSV/TSV or Parquet files: paths, fsspec URLs or glob patterns.")],
    replace: Annotated[bool, typer.Option(
        "--replace/--append", help="Replace the table's rows atomically, or append to them (default).")] = False,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Load the good rows and report the bad ones (default: any bad row loads nothing).")]
    = False,
    mapping: Annotated[str | None, typer.Option(
        help="YAML mapping file: columns (file column: published column), values, nulls, units.")] = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="FILECOL=COLUMN: load file column FILECOL into COLUMN (repeatable).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="COLUMN=VALUE: the same value for every row, e.g. --set survey=Hi-GAL (repeatable).")] = None,
    null: Annotated[list[str] | None, typer.Option(help="An extra NULL marker, e.g. --null -999 (repeatable).")]
    = None,
    unit: Annotated[list[str] | None, typer.Option(
        help="FILECOL=UNIT: the unit of a file column that declares none or a wrong one (repeatable).")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="fits, votable, csv, tsv or parquet (default: from the file name).")] = None,
    problems: Annotated[str | None, typer.Option(help="Write every bad row to this file (one per line).")] = None,
) -> None:
    """Load catalogue files into a published table: map, convert, check, COPY; bad rows are reported."""
    from pathlib import Path

    from app.progress import row_progress
    from schemas import find_table
    from vo.ingest.catalog import CatalogError, CatalogFileError, ColumnMap, load_catalog

    try:
        declared = find_table(table)
    except KeyError:
        raise _fail(f"no published table {table}: declare it in schemas/ and run `vlkb db migrate`") from None
    files = _files(paths, all_match=True)
    try:
        cmap = ColumnMap.from_file(mapping) if mapping else ColumnMap()
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    cmap = cmap.merged(ColumnMap(_pairs(map_, "--map"), _pairs(set_, "--set"), tuple(null or ()),
                                 _pairs(unit, "--unit")))
    settings = _settings()
    with _operator_errors():
        url = _ensure_database(settings)
        try:
            with psycopg.connect(url) as conn, row_progress(f"load {declared.qualified_name}") as (on_file, on_rows):
                report = load_catalog(conn, declared, files, cmap=cmap, replace=replace, skip_bad=skip_bad,
                                      fmt=fmt, on_file=on_file, on_rows=on_rows)
        except (CatalogError, CatalogFileError) as exc:
            raise _fail(str(exc)) from None
    typer.echo(report.summary())
    for p in report.problems[:_SHOWN_PROBLEMS]:
        typer.echo(f"  bad {p}")
    if len(report.problems) > _SHOWN_PROBLEMS:
        more = len(report.problems) - _SHOWN_PROBLEMS
        typer.echo(f"  ... and {more} more{'' if problems else ' (--problems FILE lists them all)'}")
    if problems:
        Path(problems).write_text("".join(f"{p}\n" for p in report.problems), encoding="utf-8")
    if report.problems and not report.committed:
        typer.echo("  nothing was loaded: fix the rows, or give --skip-bad to load the good ones")
    if not report.committed:
        raise typer.Exit(1)


@ingest_cli.command("remove")
def ingest_remove(
    targets: Annotated[list[str] | None, typer.Argument(
        help="Dataset IDs (ivo://...) or the files they were ingested from (paths or URLs).")] = None,
    survey: Annotated[list[str] | None, typer.Option(
        help="Withdraw every dataset of this survey (repeatable); narrow with --species and --transition.")] = None,
    species: Annotated[str | None, typer.Option(help="With --survey: only this species.")] = None,
    transition: Annotated[str | None, typer.Option(help="With --survey and --species: only this transition.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be withdrawn; change nothing.")] = False,
) -> None:
    """Withdraw datasets (by ID, file or survey) in one transaction, with their cached previews."""
    from db.withdraw import find_published, withdraw
    from vo import storage
    from vo.preview import forget_previews

    targets = targets or []
    surveys = survey or []
    if not targets and not surveys:
        raise _fail("nothing to remove: give dataset IDs, file paths or --survey NAME")
    if (species or transition) and not surveys:
        raise _fail("--species and --transition narrow --survey; give --survey too")
    if transition and not species:
        raise _fail("--transition needs --species (the survey's obs_title is 'species | transition')")
    ids = [t for t in targets if t.startswith("ivo://")]
    locations = {t: storage.location(t) for t in targets if not t.startswith("ivo://")}
    title = f"{species} | {transition}" if species and transition else None
    settings = _settings()
    with _operator_errors():
        url = _ensure_database(settings)
        with psycopg.connect(url) as conn, conn.transaction():
            found = find_published(conn, ids=ids, paths=list(locations.values()), surveys=surveys,
                                   obs_title=title)
            if species and not transition:
                found = [p for p in found if p.did in ids or p.path in locations.values()
                         or (p.obs_title or "").split(" | ", 1)[0] == species]
            missing = [i for i in ids if i not in {p.did for p in found}]
            missing += [t for t, loc in locations.items() if loc not in {p.path for p in found}]
            missing += [s for s in surveys if s not in {p.survey for p in found}]
            if missing:
                raise _fail(f"nothing removed: no published dataset matches {', '.join(missing)}")
            if not dry_run:
                withdraw(conn, [p.did for p in found])
        if not dry_run:
            for p in found:
                forget_previews(settings.home / "cache" / "previews", p.did)
    verb = "would withdraw" if dry_run else "withdrew"
    typer.echo(f"{verb} {len(found)} dataset{'s' * (len(found) != 1)}")
    for p in found:
        typer.echo(f"  {p.did}  ({p.path})")


@policy_cli.command("set")
def policy_set(
    survey: Annotated[str, typer.Argument(help="Survey name (obs_collection).")],
    groups: Annotated[str, typer.Option(help="Comma-separated groups that may read it.")] = "",
    public: Annotated[bool, typer.Option("--public", help="Make the survey readable by everyone.")] = False,
) -> None:
    """Restrict SURVEY to --groups, or open it with --public; applies at once, to every protocol."""
    from db.policies import set_policy

    wanted = [g for g in groups.split(",") if g.strip()]
    if bool(wanted) == public:
        raise _fail("give either --groups a,b (restricted) or --public")
    settings = _settings()
    with _operator_errors():
        url = _ensure_database(settings)
        with psycopg.connect(url) as conn:
            policy = set_policy(conn, survey, wanted)
    who = "everyone" if policy.public else "members of " + ", ".join(policy.groups)
    typer.echo(f"{survey}: readable by {who} ({policy.datasets} datasets)")
    if policy.datasets == 0:
        typer.secho(f"vlkb: note: no dataset of {survey} is ingested yet", err=True, fg=typer.colors.YELLOW)


@policy_cli.command("list")
def policy_list() -> None:
    """Every survey, its datasets and who may read it."""
    from db.policies import list_policies

    settings = _settings()
    with _operator_errors():
        url = _ensure_database(settings)
        with psycopg.connect(url) as conn:
            policies = list_policies(conn)
    width = max([len(p.survey) for p in policies] + [6])
    typer.echo(f"{'survey':<{width}}  datasets  readable by")
    for p in policies:
        typer.echo(f"{p.survey:<{width}}  {p.datasets:>8}  {'everyone' if p.public else ', '.join(p.groups)}")


def _build_hips(settings: Settings, url: str, survey: str | None, *, force: bool = False) -> list:
    """Build the HiPS of every 2D band (or of ``survey``), telling each as it is done; the build reports."""
    import asyncio

    from psycopg_pool import AsyncConnectionPool

    from db.policies import list_policies
    from vo.hips import BuildReport, build_all

    def told(r: BuildReport) -> None:
        what = ("current, kept" if r.skipped else f"built in {r.seconds:.1f} s" if r.updated is None
                else f"{r.updated} tiles updated in {r.seconds:.1f} s")
        typer.echo(f"{r.slug}: {r.datasets} datasets, order {r.order}, {r.tiles} tiles: {what}")

    async def run() -> list[BuildReport]:
        with psycopg.connect(url) as conn:
            restricted = {p.survey: tuple(p.groups) for p in list_policies(conn) if p.groups}
        async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
            return await build_all(pool, settings.hips_root, restricted, authority=settings.authority,
                                   only=survey, force=force, progress=told)

    return asyncio.run(run())


@hips_cli.command("build")
def hips_build(
    survey: Annotated[str | None, typer.Argument(help="A sub-survey slug (hi-gal-70um) or survey name; default all.")]
    = None,
    force: Annotated[bool, typer.Option(help="Rebuild even the HiPS whose datasets have not changed.")] = False,
) -> None:
    """Build the Galactic HiPS of every 2D survey (or of SURVEY) into VLKB_HIPS_DIR; current ones are kept."""
    settings = _settings()
    with _operator_errors():
        url = _ensure_database(settings)
        reports = _build_hips(settings, url, survey, force=force)
    if not reports:
        raise _fail(f"no 2D survey {survey!r} with datasets" if survey else "no 2D survey with datasets yet")
    typer.echo(f"{len(reports)} HiPS in {settings.hips_root}")


@cli.command("dev-token")
def dev_token(
    user: Annotated[str, typer.Option(help="User name (job owner) the token proves.")],
    groups: Annotated[str, typer.Option(help="Comma-separated groups of the user.")] = "",
    ttl: Annotated[int, typer.Option(help="Lifetime of the token, seconds.")] = 3600,
) -> None:
    """Print a token of the local development issuer (embedded default only; see docs/auth.md)."""
    from app.dev_issuer import mint

    settings = _settings()
    if not settings.dev_issuer:
        raise _fail("the development issuer exists only in the embedded default (no VLKB_DATABASE_URL, "
                    "no VLKB_OIDC_ISSUER); get tokens from your identity provider")
    if ttl <= 0:
        raise _fail("--ttl must be positive")
    typer.echo(mint(settings, user, tuple(g.strip() for g in groups.split(",") if g.strip()), ttl))


def _metrics_dir(settings: Settings) -> None:
    """Give prometheus_client's multiprocess mode this service's own directory (app/metrics.py),
    unless the operator named one: it must be set before prometheus_client is imported.

    One directory per ``vlkb serve`` (``run/metrics/<its pid>``), shared by its worker processes,
    so services sharing a ``VLKB_HOME`` neither wipe nor add up each other's figures; those of
    services that are gone are removed.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    root = settings.home / "run" / "metrics"
    root.mkdir(parents=True, exist_ok=True)
    where = root / str(os.getpid())
    for path in [*root.iterdir(), where]:  # our own pid's is a previous process's (pid reused)
        if path == where or not (path.name.isdigit() and pid_alive(int(path.name))):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    where.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(where)


def _serve(settings: Settings, demo: bool) -> None:
    import uvicorn

    _metrics_dir(settings)
    from app.main import create_app
    from app.serving import worker_count

    if not port_free(settings.port, settings.host):
        raise _fail(f"port {settings.port} on {settings.host} is taken: stop that program or set VLKB_PORT")
    cluster = cluster_for(settings)
    started_here = settings.embedded and not cluster.running()
    try:
        with _operator_errors():
            url = _ensure_database(settings)
            if demo:
                _load_demo(settings, url, settings.demo_scale, force=False)
        workers = worker_count(settings)
        typer.echo(f"serving {settings.public_url}/ with {workers} process{'es' if workers > 1 else ''} "
                   "(Ctrl-C to stop)")
        # several workers: each builds its own app from the same environment (app/serving.py);
        # app/metrics.py logs each request once, hence no access log
        app = "app.serving:app_from_environment" if workers > 1 else create_app(settings)
        uvicorn.run(app, factory=workers > 1, workers=workers if workers > 1 else None, host=settings.host,
                    port=settings.port, log_config=None, timeout_graceful_shutdown=10, access_log=False,
                    timeout_keep_alive=settings.keep_alive)
    finally:
        if started_here:
            with _operator_errors():
                cluster.stop()
                typer.echo("embedded PostgreSQL stopped")


@cli.command("serve")
def serve(
    demo: Annotated[bool, typer.Option(help="Load the demo data first if it is not there.")] = False,
) -> None:
    """Run the HTTP service (starting and migrating the embedded database when in use)."""
    _serve(_settings(), demo)


@cli.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once; 0: VLKB_WORKER_CONCURRENCY.")] = 0,
) -> None:
    """Run async jobs taken from the Redis broker (VLKB_EXECUTOR=celery on the service); Ctrl-C to stop."""
    from app.jobs import broker_url, job_parts, job_runners, results_store
    from app.logging import configure_logging

    settings = _settings()
    with _operator_errors():
        if settings.embedded and not cluster_for(settings).running():
            raise _fail("the embedded database is not running: start it with `vlkb db start` or `vlkb serve`")
        url = database_url(settings)
        psycopg.connect(url, connect_timeout=10).close()
    configure_logging(settings.log_level, settings.log_json)
    # `kill -USR1 <pid>` prints every thread's stack to the log: what a stuck job is doing
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from vo.uws.celery_executor import WorkerHost, run_worker

    if settings.worker_metrics_port is not None:
        from app.metrics import serve_worker_metrics

        serve_worker_metrics(settings.worker_metrics_port, settings.host)

    host = WorkerHost(url, results_store(settings), job_runners(settings),
                      concurrency=concurrency or settings.worker_concurrency, per_owner=settings.jobs_per_owner,
                      heartbeat=settings.job_heartbeat, parts=job_parts())
    run_worker(broker_url(settings), host, loglevel=settings.log_level)


def _check_line(ok: bool, what: str, detail: str) -> bool:
    mark = typer.style("ok  ", fg=typer.colors.GREEN) if ok else typer.style("FAIL", fg=typer.colors.RED)
    typer.echo(f"[{mark}] {what}: {detail}")
    return ok


def _check_step(what: str, fn: Callable[[], str]) -> bool:
    try:
        return _check_line(True, what, fn())
    except Exception as exc:  # each check reports its own failure and the next goes on
        return _check_line(False, what, str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))


def _warn(what: str, detail: str) -> None:
    typer.echo(f"[{typer.style('WARN', fg=typer.colors.YELLOW)}] {what}: {detail}")


def _results_bucket_open(url: str) -> str | None:
    """Whether an ``s3://`` results store answers an anonymous listing: the bucket name if it does."""
    import s3fs

    bucket = url.removeprefix("s3://").split("/", 1)[0]
    fs = s3fs.S3FileSystem(anon=True, skip_instance_cache=True,
                           client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
                           if os.environ.get("AWS_ENDPOINT_URL") else {})
    try:
        fs.ls(bucket, refresh=True)
    except Exception:  # refused (the expected answer), or unreachable: both mean not open to anonymous users
        return None
    return bucket


def _production_warnings(settings: Settings) -> None:
    """What a production deployment must not keep: printed as warnings, never failing the check."""
    if settings.dev_issuer:
        _warn("identity", "tokens of the local development issuer are accepted (embedded default, no "
              "VLKB_OIDC_ISSUER): anyone who can read VLKB_HOME/dev-issuer/key.json can be any user, and the "
              "development login /dev-issuer/authorize lets anyone who reaches the service log in as any user "
              "with any groups; set VLKB_OIDC_ISSUER and VLKB_DATABASE_URL in production")
    if settings.base_url is None:
        _warn("public URL", "VLKB_BASE_URL is unset: behind a proxy, links and job URLs name the internal address")
    if settings.executor == "local" and settings.broker_url is not None:
        _warn("executor", "VLKB_BROKER_URL is set but VLKB_EXECUTOR is local: this `vlkb serve` runs the jobs of "
              "its database itself, beside any `vlkb worker`; give every process VLKB_EXECUTOR=celery "
              "(docs/operations.md, Async jobs)")
    anonymous = settings.quota_anonymous
    if anonymous.sync_concurrent is None and anonymous.queries_per_window is None:
        _warn("quotas", "VLKB_QUOTA_ANONYMOUS sets neither sync_concurrent nor queries_per_window: one anonymous "
              "client can keep every database connection busy (docs/operations.md, Quotas)")
    elif settings.quota_redis_url is None and (settings.workers or os.cpu_count() or 1) > 1:
        _warn("quotas", "VLKB_QUOTA_REDIS_URL is unset: each server process counts on its own, so a client gets "
              "its limits once per process")
    try:
        from db.ddl import spatial_functions_not_leakproof

        if settings.embedded and not cluster_for(settings).running():
            raise RuntimeError("database not running")
        with psycopg.connect(database_url(settings), connect_timeout=5) as conn:
            missing = spatial_functions_not_leakproof(conn)
        if missing:
            _warn("LEAKPROOF", f"{len(missing)} pgSphere operator functions are not LEAKPROOF (e.g. {missing[0]}): "
                  "spatial conditions on restricted tables cannot use their indexes; run `vlkb db migrate` as a "
                  "superuser once (docs/auth.md)")
        else:
            _check_line(True, "LEAKPROOF", "pgSphere's index operators are LEAKPROOF")
    except Exception as exc:
        _warn("LEAKPROOF", f"not checked: {exc}")
    results = settings.results_root
    if results.startswith("s3://"):
        try:
            bucket = _results_bucket_open(results)
        except Exception as exc:
            _warn("results store", f"not checked: {exc}")
        else:
            if bucket:
                _warn("results store", f"bucket {bucket} answers anonymous listings: anyone can read every job's "
                      "results; make it private (docs/operations.md, Object storage)")
            else:
                _check_line(True, "results store", f"{results} refuses anonymous requests")
    elif "://" not in results or results.startswith("file://"):
        where = Path(results.removeprefix("file://"))
        if where.exists() and where.stat().st_mode & 0o007:
            _warn("results store", f"{where} is open to other users of this machine (mode "
                  f"{oct(where.stat().st_mode & 0o777)}): chmod o-rwx")


@cli.command("check")
def check() -> None:
    """Check configuration and database, one line per check, with what to do when one fails."""
    settings = _settings()
    results = []
    if settings.embedded:
        results.append(_check_step("PostgreSQL binaries", lambda: str(find_bindir(settings.pg_bindir))))

        def pgsphere() -> str:
            script = find_script(find_bindir(settings.pg_bindir))
            if script is None:
                raise RuntimeError("pgSphere not installed: apt-get install postgresql-15-pgsphere")
            if script.needs_repair():
                raise RuntimeError(
                    f"{script.path} still has the legacy DaCHS smoc operators that make CREATE EXTENSION fail "
                    "on PostgreSQL 15.20: run `sudo vlkb db repair-pgsphere`"
                )
            return f"{script.path} installs cleanly"

        results.append(_check_step("pgSphere install script", pgsphere))

        def home() -> str:
            settings.home.mkdir(parents=True, exist_ok=True)
            if not os.access(settings.home, os.W_OK):
                raise RuntimeError(f"{settings.home} is not writable: set VLKB_HOME to a writable directory")
            return str(settings.home)

        results.append(_check_step("VLKB_HOME", home))
        results.append(_check_step("embedded cluster", lambda: cluster_for(settings).status()))

    def database() -> str:
        if settings.embedded and not cluster_for(settings).running():
            raise RuntimeError("embedded cluster not running: start it with `vlkb db start`")
        with psycopg.connect(database_url(settings), connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            assert row is not None  # SHOW returns exactly one row
            version = row[0]
            ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_sphere'").fetchone()
            if ext is None:
                raise RuntimeError("pg_sphere extension missing: run `vlkb db migrate`")
            row = conn.execute("SELECT count(*) FROM tap_schema.tables").fetchone()
            assert row is not None  # an aggregate without GROUP BY returns exactly one row
            n = row[0]
            return f"PostgreSQL {version}, pg_sphere {ext[0]}, {n} tables in TAP_SCHEMA"

    results.append(_check_step("database", database))
    _production_warnings(settings)
    results.append(_check_step("HTTP port", lambda: (
        f"{settings.host}:{settings.port} free" if port_free(settings.port, settings.host)
        else f"{settings.host}:{settings.port} in use (a running vlkb, or set VLKB_PORT)")))
    if not all(results):
        raise typer.Exit(1)


@cli.command("config-doc")
def config_doc() -> None:
    """Print the settings reference (docs/configuration.md) as Markdown."""
    from app.settings import settings_markdown

    typer.echo(settings_markdown(), nl=False)


@cli.command("schema-doc")
def schema_doc() -> None:
    """Print the published tables reference (docs/data-model.md) as Markdown."""
    from schemas import schemas_markdown

    typer.echo(schemas_markdown(), nl=False)


def main() -> None:
    """Console-script entry point."""
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
