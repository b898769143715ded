"""Service settings: one pydantic-settings model, read from ``VLKB_*`` environment variables.

Built once by :func:`app.main.create_app` or the CLI and passed down as plain values; ``vo/``
and ``db/`` never read it. Each field's description is what ``docs/configuration.md`` shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SERVICE_BASES", "QuotaLimits", "Settings", "settings_markdown"]


class QuotaLimits(BaseModel):
    """The limits of one identity class (``VLKB_QUOTA_*``, JSON objects); a missing key means no limit of
    its own (the service-wide setting applies). Enforced by ``app/quotas.py``, per client: an authenticated
    user, or an anonymous client's address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sync_concurrent: int | None = Field(None, ge=1, description="synchronous queries running at once")
    queries_per_window: int | None = Field(None, ge=1, description="queries and job creations per VLKB_QUOTA_WINDOW")
    jobs_active: int | None = Field(None, ge=1, description="async jobs QUEUED or EXECUTING at once")
    maxrec: int | None = Field(None, ge=0, description="hard MAXREC (lowers VLKB_MAXREC_LIMIT)")
    upload_bytes: int | None = Field(None, ge=0, description="upload bytes (lowers VLKB_UPLOAD_MAX_BYTES)")
    execution_duration: int | None = Field(None, ge=1, description="async execution duration, s "
                                           "(lowers VLKB_EXECUTION_DURATION)")


#: the first path segments of the service's own routes: the ViaLactea path may not take one, so no
#: two routers share a path and the order they are matched in (app/main.py) changes no answer
SERVICE_BASES = frozenset({
    "api", "health", "static", "tap", "sia", "datalink", "soda", "stamps", "sedmods", "sfind", "oai", "moc",
    "hips", "dev-issuer", "metrics",
})

_QUOTA_KEYS = "keys: " + ", ".join(f"`{k}` ({f.description})" for k, f in QuotaLimits.model_fields.items())


class Settings(BaseSettings):
    """Configuration of a vlkb service, from ``VLKB_``-prefixed environment variables."""

    model_config = SettingsConfigDict(env_prefix="VLKB_", env_file=None, extra="ignore")

    home: Path = Field(
        Path("./var"),
        description="Directory for the service's state: the embedded PostgreSQL cluster, demo data, "
        "job results, caches and logs.",
    )
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL of an external server (postgresql://user:pass@host:port/db). "
        "When unset, the service runs its own private cluster under VLKB_HOME (the embedded default).",
    )
    db_port: int | None = Field(
        None,
        description="Port of the embedded cluster. Unset: a free port is picked at first start and kept.",
    )
    pg_bindir: Path | None = Field(
        None,
        description="Directory holding initdb/pg_ctl/postgres for the embedded cluster. "
        "Unset: the newest /usr/lib/postgresql/<version>/bin.",
    )
    schemas_dir: Path | None = Field(
        None,
        description="Directory of the operator's own table declarations (*.yaml, the form of schemas/ in the "
        "package), published next to vlkb's after `vlkb db migrate`; see docs/ingest.md (catalogues). "
        "Give the same value to the service, the workers and the CLI.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8000, description="Port the HTTP server listens on.")
    base_url: str | None = Field(
        None,
        description="Public base URL of the service (https://vo.example.org). Every URL an answer gives "
        "(ObsCore access_url and preview, DataLink links, capabilities, job locations) starts with it; "
        "changing it needs no re-ingest. Unset: the request's host when it is an allowed one, else "
        "http://HOST:PORT (async TAP jobs always use this base or http://HOST:PORT).",
    )
    allowed_hosts: list[str] = Field(
        [],
        description="Host names (the `Host` header) under which the service may name itself in the URLs it writes "
        "when VLKB_BASE_URL is unset, besides localhost, 127.0.0.1, ::1 and VLKB_HOST. JSON list, e.g. "
        "`[\"vo.example.org\"]`. A request naming another host gets URLs built from http://HOST:PORT.",
    )
    authority: str = Field(
        "vlkb.local",
        description="IVOA naming authority used in publisher DIDs (ivo://AUTHORITY/vlkb?survey/file.fits) and "
        "registry records (ivo://AUTHORITY/vlkb); see docs/registry.md on registering it.",
    )
    service_title: str = Field(
        "vlkb: ViaLactea Knowledge Base",
        description="Human-readable service title shown on the landing page and in VOSI documents.",
    )
    registry_publisher: str = Field(
        "ViaLactea Knowledge Base",
        description="Registry records: the organisation publishing the service (VOResource curation/publisher).",
    )
    registry_publisher_id: str | None = Field(
        None, description="Registry records: IVOA identifier of the publishing organisation's own record, if any.",
    )
    registry_contact_name: str = Field(
        "vlkb operator", description="Registry records: name of the contact person or desk (curation/contact).",
    )
    registry_contact_email: str = Field(
        "vo-admin@vlkb.local",
        description="Registry records: contact e-mail, also the OAI-PMH adminEmail; set a real address before "
        "registering.",
    )
    registry_creators: list[str] = Field(
        [], description="Registry records: creators of the data collections (JSON list of names).",
    )
    registry_subjects: list[str] = Field(
        ["milky-way-galaxy", "interstellar-medium", "star-formation", "infrared-astronomy", "radio-astronomy"],
        description="Registry records: subjects, preferably Unified Astronomy Thesaurus concepts (JSON list).",
    )
    registry_description: str = Field(
        "Images, spectral cubes, compact-source catalogues and filaments of Galactic-plane surveys, searchable "
        "with TAP/ADQL and SIA 2 and cut with SODA.",
        description="Registry records: description of the service.",
    )
    registry_reference_url: str | None = Field(
        None, description="Registry records: page describing the service. Unset: the landing page (base URL).",
    )
    registry_rights: str | None = Field(
        "Public surveys may be used by anyone; restricted surveys only by members of their groups.",
        description="Registry records: rights statement of the data (VOResource rights).",
    )
    oai_page_size: int = Field(
        100, ge=1, description="OAI-PMH (`/oai`): most records or headers in one answer; longer lists go on "
        "with a resumption token.",
    )
    moc_order: int = Field(
        10, ge=0, le=29, description="HEALPix order of the coverage MOCs served at `/moc` (10: cells of 3.4 "
        "arcmin); registry records carry them degraded to order 6.",
    )
    workers: int | None = Field(
        None, ge=1,
        description="HTTP worker processes of `vlkb serve` (app/serving.py). Unset: one per CPU core the "
        "service may use. Pools, caches and the local job executor are per process.",
    )
    keep_alive: int = Field(
        75, ge=1,
        description="Seconds an idle keep-alive connection stays open. Longer than the idle timeout of the "
        "proxies and load balancers in front (often 60 s), so the service never closes a connection just as "
        "a client or proxy sends its next request on it (which they see as a dropped request).",
    )
    hips_dir: Path | None = Field(
        None, description="Directory of the HiPS built by `vlkb hips build` and served at `/hips` "
        "(default: `VLKB_HOME/hips`).",
    )
    hips_after_ingest: bool = Field(
        False, description="`vlkb ingest datasets` also builds the HiPS of the 2D bands of the survey it fed "
        "(as `vlkb hips build SURVEY`: only bands whose files changed are rebuilt).",
    )
    portal_client_id: str = Field(
        "vlkb-portal", description="OAuth client id of the web portal at the OIDC issuer (a public client: "
        "authorization code with PKCE, redirect URI the portal's own address, `VLKB_BASE_URL/`).",
    )
    hips_visibility_ttl: float = Field(
        5.0, ge=0, description="Seconds the HiPS server keeps, per set of caller groups, the list of HiPS they may "
        "see, so a tile costs no database round trip: a policy change (`vlkb policy set`) reaches HiPS tiles "
        "within this time. 0: look up every request.",
    )
    dataset_lookup_ttl: float = Field(
        60.0, ge=0, description="Seconds at most each process keeps, per caller (user and groups), a dataset a SODA "
        "cut found for them, so repeated cuts of one dataset cost no database round trip. The database announces "
        "every ingest, withdrawal and policy change (`vlkb policy set`), and each process then forgets them all: "
        "this is only the bound should an announcement be lost. 0: look up every cut.",
    )
    web_dir: Path | None = Field(
        None, description="Directory of the web portal's files served at `/static` (default: the `web/` "
        "directory of the source tree; `make setup` installs its vendored libraries there with npm).",
    )
    db_pool_min: int = Field(1, description="Minimum number of pooled database connections (per worker process).")
    db_pool_max: int = Field(10, description="Maximum number of pooled database connections (per worker process).")
    db_pool_queue: int = Field(
        100, ge=1,
        description="Most requests waiting for a database connection while all are in use; one more is "
        "answered 503 (busy) with Retry-After at once.",
    )
    db_pool_wait: float = Field(
        60.0, gt=0,
        description="Longest time a request waits for a database connection, seconds; past it the answer is "
        "503 (busy) with Retry-After.",
    )
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(
        False, description="Write logs as JSON lines (for log shippers) instead of console text."
    )
    maxrec_default: int = Field(
        100_000, description="TAP/SIA MAXREC applied when the client sends none."
    )
    maxrec_limit: int = Field(
        10_000_000, description="Hard upper limit on MAXREC; larger requests are capped to it."
    )
    adql_max_length: int = Field(
        100_000, ge=1, description="Longest ADQL query (TAP QUERY) accepted, in characters; a longer one is refused "
        "with a 400 before it is parsed (translation takes about 1-2 s per 100,000 characters of CPU). Long lists "
        "of values belong in an UPLOAD table.",
    )
    execution_duration: int = Field(
        600, description="Default execution time limit of an async job, seconds."
    )
    sync_timeout: int = Field(
        300, description="statement_timeout of a synchronous query, seconds."
    )
    destruction_days: int = Field(7, description="Days an async job and its results are kept.")
    soda_max_cuts: int = Field(
        1000, description="Most cuts (IDs x regions) one async SODA job may ask for."
    )
    merge_max_voxels: int = Field(
        16_000_000, description="Most pixels of a merged image or cube (`/soda/merge`); bounds the memory of a merge."
    )
    sfind_max_tiles: int = Field(
        64, gt=0, description="Most images (IDs) one source-finding job (`/sfind/async`) may search."
    )
    sfind_max_pixels: int = Field(
        16_000_000, gt=0, description="Most pixels of one image a source finder is given (after the region cut); "
        "a larger image is refused with a hint to give a region."
    )
    stamps_max_sources: int = Field(
        100_000, ge=1, description="Most sources one async stamps job (`/stamps/async`) may ask for: positions, "
        "rows of its SOURCES table or of its QUERY.",
    )
    stamps_max_radius: float = Field(
        0.5, gt=0, description="Largest stamp radius (SIZE or a source's radius), degrees, in `/stamps`.",
    )
    stamps_list_limit: int = Field(
        200, ge=0, description="An async stamps job lists each stamp file as a result of its own when it makes "
        "at most this many; larger jobs hand them back in the tar.gz only (the manifest names every file).",
    )
    body_timeout: float = Field(
        300, gt=0,
        description="Longest time, seconds, a client may take to send a form or multipart request body "
        "(parameters and uploads); a slower body is answered 408 and the connection closed.",
    )
    body_idle_timeout: float = Field(
        30, gt=0,
        description="Longest wait, seconds, for the next piece of a request body that is being sent; "
        "a client silent longer is answered 408 and the connection closed.",
    )
    upload_max_bytes: int = Field(
        16 * 1024 * 1024,
        description="TAP UPLOAD: most bytes of VOTable one request may upload, all tables together "
        "(larger requests get 413 before they are parsed).",
    )
    upload_max_rows: int = Field(
        100_000, description="TAP UPLOAD: most rows one request may upload, all tables together."
    )
    upload_max_columns: int = Field(
        1000, ge=1, le=1600, description="TAP UPLOAD: most columns (FIELDs) of one uploaded table, counted before "
        "the VOTable is parsed (PostgreSQL allows 1600).",
    )
    upload_url_allow_hosts: list[str] = Field(
        [], description="TAP UPLOAD by URL: hosts the service may fetch from even though they are loopback, "
        "private or link-local (refused otherwise, also after a redirect): host names (exact), addresses or "
        "networks (CIDR). JSON list, e.g. `[\"127.0.0.1\", \"tables.example.org\", \"10.1.0.0/16\"]`.",
    )
    upload_url_timeout: float = Field(
        30.0, gt=0, description="TAP UPLOAD by URL: seconds the fetch of one URL may take, redirects included "
        "(its size counts in VLKB_UPLOAD_MAX_BYTES).",
    )
    user_tables_max_rows: int = Field(
        1_000_000, ge=0, description="Persistent user tables: most rows one user may keep, all their tables "
        "together; a create or load that would pass it is refused (413) before anything is written.",
    )
    user_tables_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="Persistent user tables: most bytes one user may keep (the stored "
        "size of their tables, indexes included), all tables together; also bounds one request body. A create or "
        "load whose body would pass it is refused (413) before anything is written.",
    )
    executor: Literal["local", "celery"] = Field(
        "local",
        description="How async jobs run: `local`, threads inside `vlkb serve` (no other service), or `celery`, "
        "`vlkb worker` processes on any machine reached through a Redis broker (VLKB_BROKER_URL).",
    )
    broker_url: SecretStr | None = Field(
        None,
        description="Redis URL of the Celery broker (redis://[:password@]host:6379/0), used by `vlkb serve` and "
        "`vlkb worker` when VLKB_EXECUTOR=celery. Unset: redis://127.0.0.1:6379/0.",
    )
    local_concurrency: int = Field(4, ge=1, description="Jobs the local executor runs at once.")
    worker_concurrency: int = Field(
        2, ge=1, description="Jobs one `vlkb worker` process runs at once (threads); run more workers for more cores."
    )
    worker_metrics_port: int | None = Field(
        None, ge=1, le=65535,
        description="Port on which each `vlkb worker` serves its own Prometheus metrics (`/metrics` on VLKB_HOST): "
        "the rows its jobs encoded and the object-storage bytes its cutouts fetched against those they needed. "
        "Job counts, phases and durations come from the database through the service's `/metrics`. Unset: none.",
    )
    jobs_per_owner: int = Field(
        4, ge=0,
        description="Most jobs of one owner running at once over all executors and workers (0: no limit); "
        "the others stay QUEUED until one of theirs ends. Anonymous jobs count as one owner.",
    )
    job_heartbeat: float = Field(
        10.0, gt=0,
        description="Seconds between heartbeats of a process running jobs; a job whose process is gone (or "
        "missed 4 heartbeats) is ended in ERROR by the reaper. Use the same value for the service and workers.",
    )
    results_url: str | None = Field(
        None,
        description="Where job results are stored: a directory or an fsspec URL (s3://bucket/prefix, "
        "file:///srv/vlkb-results); every `vlkb serve` and `vlkb worker` must reach the same one. "
        "Unset: VLKB_HOME/results.",
    )
    metrics_networks: list[str] = Field(
        ["127.0.0.0/8", "::1/128"],
        description="Client networks (CIDR, a JSON list) that may read `GET /metrics` without a token; `[]`: "
        "none. Behind a proxy or an Ingress the client is the proxy unless its forwarded address is trusted, "
        "so in a cluster prefer VLKB_METRICS_TOKEN (docs/operations.md, Metrics).",
    )
    metrics_token: SecretStr | None = Field(
        None, description="A bearer token that also opens `GET /metrics` (`Authorization: Bearer <token>`, "
        "Prometheus `authorization: {credentials_file: ...}`), from any address. Unset: networks only.",
    )
    demo_scale: int = Field(1, description="Catalogue size multiplier used by `vlkb demo-data`.")
    oidc_issuer: str | None = Field(
        None, description="OIDC issuer URL whose bearer tokens (JWT) the service accepts; its discovery document "
        "(`/.well-known/openid-configuration`) gives the JWKS. Unset: no external issuer (the embedded default "
        "then accepts tokens of the local development issuer, `vlkb dev-token`; see docs/auth.md).",
    )
    oidc_audience: str = Field(
        "vlkb", description="Audience (`aud` claim) a token must carry: the client ID or resource name of this "
        "service at the issuer.",
    )
    oidc_algorithms: list[str] = Field(
        ["RS256", "ES256"], description="Signature algorithms accepted in tokens (`none` and HMAC are never "
        "accepted). JSON list, e.g. `[\"RS256\"]`.",
    )
    oidc_groups_claim: str = Field(
        "groups", description="Claim holding the user's groups; a dotted path reads a nested claim "
        "(`realm_access.roles` for Keycloak realm roles). A leading `/` of a group path is ignored.",
    )
    oidc_user_claim: str = Field(
        "preferred_username", description="Claim naming the user (job owner); `sub` is used when it is absent.",
    )
    oidc_leeway: int = Field(60, description="Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.")
    oidc_jwks_refresh: int = Field(
        30, description="Least time between two fetches of the issuer's keys when a token names an unknown key "
        "(key rotation), seconds.",
    )
    oidc_jwks_max_age: int = Field(3600, description="Longest time the issuer's keys are cached, seconds.")
    vialactea_path: str = Field(
        "/vlkb", description="Path of the ViaLactea client's TAP base (`availability`, `tables`, `capabilities`, "
        "`sync`, `async`); its datasets base (`siav2/query`, `soda/sync`) is this path plus `/datasets`. "
        "It may not be under one of the service's own bases (`/tap`, `/soda`, `/hips`, ...). "
        "Empty: no ViaLactea mount.",
    )
    vialactea_basic_accounts: SecretStr | None = Field(
        None, description="HTTP Basic accounts accepted on the ViaLactea TAP base, for client builds that answer a "
        "Basic challenge: entries separated by spaces or `;`, each `user:hash[:group1,group2]`, where hash is "
        "bcrypt (`$2b$...`) or `sha256$salt$hex` (hex of sha256(salt + password)). Unset: Basic is not accepted "
        "(bearer tokens work everywhere).",
    )

    quota_anonymous: QuotaLimits = Field(
        QuotaLimits(),
        description="Limits of each anonymous client (by address), a JSON object, e.g. "
        "`{\"sync_concurrent\": 2, \"queries_per_window\": 60, \"jobs_active\": 2}`; " + _QUOTA_KEYS
        + ". Over a limit: 429 with Retry-After (docs/operations.md, Quotas).",
    )
    quota_authenticated: QuotaLimits = Field(
        QuotaLimits(), description="Limits of each authenticated user not in a group of VLKB_QUOTA_GROUPS "
        "(same keys as VLKB_QUOTA_ANONYMOUS).",
    )
    quota_groups: dict[str, QuotaLimits] = Field(
        {}, description="Limits of the users of named groups, a JSON object of group name to limits (same keys): "
        "they replace VLKB_QUOTA_AUTHENTICATED; a user in several gets the most generous value of each key.",
    )
    quota_redis_url: SecretStr | None = Field(
        None, description="Redis URL (`redis://host:6379/1`) where the quota counts and windows are kept, shared "
        "by every `vlkb serve` process and machine. Unset: each process counts on its own (a client may get N "
        "times its limits over N processes).",
    )
    quota_window: float = Field(
        60.0, gt=0, description="The window of `queries_per_window`, seconds (a sliding window).",
    )
    quota_refusal_delay: float = Field(
        0.25, ge=0, le=10, description="Seconds an anonymous client already over its query quota waits for its "
        "429 (answered before routing, app/quota_gate.py): a client repeating refused queries on a connection is "
        "slowed to a few a second, at no cost to the service; the connection stays open. 0: answered at once.",
    )

    @field_validator("vialactea_path")
    @classmethod
    def _own_vialactea_path(cls, value: str) -> str:
        first = value.strip("/").split("/", 1)[0]  # empty: no ViaLactea mount
        if first in SERVICE_BASES:
            raise ValueError(f"{value!r} is under /{first}, a base of the service's own: choose another path "
                             "(the default is /vlkb)")
        return value

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def embedded(self) -> bool:
        """True when the service runs its own private PostgreSQL cluster."""
        return self.database_url is None

    @property
    def dev_issuer(self) -> bool:
        """True when tokens of the local development issuer are accepted: the embedded default only."""
        return self.embedded and self.oidc_issuer is None

    @property
    def public_url(self) -> str:
        """The service's base URL without a trailing slash."""
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def results_root(self) -> str:
        """The results store's root: VLKB_RESULTS_URL, else a directory under VLKB_HOME."""
        return self.results_url or str(self.home / "results")

    @property
    def moc_cache_dir(self) -> Path:
        """Where coverage MOCs are cached (each rebuilt when missing or when its footprints change)."""
        return self.home / "cache" / "moc"

    @property
    def hips_root(self) -> Path:
        """Where the HiPS are built and served from."""
        return self.hips_dir or self.home / "hips"

    @property
    def web_root(self) -> Path:
        """The portal's static files (``static/``) and vendored libraries (``node_modules/``)."""
        return self.web_dir or Path(__file__).resolve().parent.parent / "web"

    @property
    def data_dir(self) -> Path:
        """Where demo FITS files are written."""
        return self.home / "data"


def settings_markdown() -> str:
    """The settings table of ``docs/configuration.md``, from the field descriptions."""
    lines = [
        "# Configuration",
        "",
        "vlkb reads its settings from environment variables prefixed `VLKB_` (pydantic-settings).",
        "This page is generated by `vlkb config-doc`; a test keeps it in step with `app/settings.py`.",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default is None else f"`{default}`"
        if isinstance(default, BaseModel):
            shown = f"`{default.model_dump_json(exclude_none=True)}`"
        lines.append(f"| `VLKB_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(lines) + "\n"
