"""docgw's one typed, frozen configuration, declared once with pydantic and loaded once at the edge
(the CLI) from a TOML file with environment overrides. Nothing else in docgw reads ``os.environ``.

Each section is a frozen pydantic model; a field's type, default and docstring are its whole
declaration: the loader checks against it, and docs/reference/config.md's table is generated from
it (``python -m gateway.settings_reference``). A channel is one of a tagged union, one model per
``kind``, each with only its own keys.

Environment overrides use one prefix and ``__`` between levels:
``DOCGW_DATABASE__URL=postgresql+asyncpg://…`` sets ``[database] url``. A text or path setting
takes the value exactly as written (``DOCGW_CHANNELS__AXIS__SECRET=12345678`` is the string
``"12345678"``, quotes would be kept); any other setting's value is parsed as TOML (numbers,
booleans, lists).

Secure defaults: the API listens on loopback; no secret has a default (API tokens live hashed in
the database; a vxp channel's ``secret`` and an http_push channel's ``token`` are required keys
without a default, so the gateway does not start until they are set).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from gateway.domain.retry import RetryPolicy

ENV_PREFIX = "DOCGW_"


class SettingsError(GatewayError):
    code = "CONFIG_INVALID"


# A TOML file has no path or tuple type: a path is written as a string and a tuple as a list.
# Everything else is strict (``port = "8080"`` is refused, not read as a number).
PathSetting = Annotated[Path, Strict(False)]
OptionalPath = Annotated[Path | None, Strict(False)]
Texts = Annotated[tuple[str, ...], Strict(False)]
Paths = Annotated[tuple[PathSetting, ...], Strict(False)]
#: A secret: never in repr, logs or error messages; required and non-empty where it is declared
#: without a default.
Secret = Annotated[str, Field(min_length=1, repr=False)]
#: A secret the section can do without: "" means not set (it still has no usable default).
OptionalSecret = Annotated[str, Field(repr=False)]


#: Defaults computed at start, as the reference shows them (``shown``).
_FIRST_UNITS_CERT = "the first local unit's `<code>.cert.pem` in `keys.dir`"
_FIRST_UNITS_KEY = "the first local unit's `<code>.key.pem` in `keys.dir`"
_KEYS_CA = "`keys.dir/ca.cert.pem`"


class Section(BaseModel):
    """Base of every settings table: frozen, strict, unknown keys refused, docstrings kept."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True
    )


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///var/docgw.db"
    """SQLite file (embedded, one process) or `postgresql+asyncpg://…` (scale-out)"""
    echo: bool = False
    """log SQL (statements run on the driver, `store/direct.py`, are logged with `[direct]` before
    their parameters)"""
    pool_size: int = Field(20, ge=1)
    """PostgreSQL connections kept open per process (10 more in bursts, closed after); keep it
    above the process's concurrent work — API requests, `delivery.workers`, the received items
    polls take at once (half of `pool_size`, at most 16, all channels together), one per scheduled
    job while it runs (its lock) — or connections are opened and closed per use. At least 1; SQLite
    uses one connection whatever this says"""
    create: bool = False
    """create the SQLite file when it does not exist. Off: every command but `docgw init` refuses
    a missing file (`DATABASE_NOT_FOUND`), so a typo in `url` is not a new, empty database; on
    only for throw-away databases (tests, demos)"""
    statements: Literal["direct", "plain"] = "direct"
    """how the store runs its statements: `direct` — the document path's statements on the
    database driver itself and, on SQLite, an engine that runs them on the event loop
    (`store/direct.py`, `store/database.py`; fastest, uses a few SQLAlchemy/aiosqlite/asyncpg
    internals pinned by the tests) — or `plain`: SQLAlchemy's public API only (for a SQLAlchemy
    release the direct path is not yet tested with; slower, see
    [performance.md](../performance.md#direct-and-plain-statements))"""


class ApiSettings(Section):
    host: str = "127.0.0.1"
    """where `docgw serve` listens (loopback: put a TLS-terminating proxy in front to expose it)"""
    port: int = 8080
    """the port `docgw serve` listens on"""
    max_upload_bytes: int = 512 * 1024 * 1024
    """largest request body, on the API and on the secure inbox (413 `PAYLOAD_TOO_LARGE` beyond)"""
    page_size: int = 50
    """default page of `GET /api/v1/messages` and `GET /api/v1/units`"""


class GatewaySettings(Section):
    profile: Literal["standard", "secure"] = "standard"
    """`standard`, or `secure` for a gateway on the classified side (TSLCD / independent LAN): it
    refuses to start with an axis channel (`kind` `vxp` or `soap`, or `axis = true`), opens
    classified packages it hands over to the drop folder, and refuses ready packages in the drop
    folder"""
    local_units: Texts = ()
    """units this gateway signs for (unit codes, checked strictly); each needs `<code>.key.pem` /
    `<code>.cert.pem` in `keys.dir`. The first one's certificate is also the default mutual-TLS
    certificate of `secure` channels and of the secure inbox"""
    inline_blob_bytes: int = 256 * 1024
    """packages up to this size are stored inline, larger ones in 1 MiB chunks"""


class KeySettings(Section):
    dir: PathSetting = Path("keys")
    """the unit keys and certificates, and `ca.cert.pem` (the default CA for mutual TLS)"""
    trust_anchors: Paths = ()
    """CA certificate files (PEM) trusted to issue units' certificates"""
    sha1_peers: Texts = ()
    """unit codes whose RSA-SHA1 signatures are accepted (old SDK peers only)"""


class CertificateSettings(Section):
    """Units' certificates over their life: what an upload must meet, revocation lists, rollover
    ([howto/units.md](../howto/units.md#certificates))."""

    min_rsa_bits: int = Field(2048, ge=1024)
    """an uploaded certificate's RSA key must have at least this many bits (`CERT_KEY_TOO_WEAK`);
    DOMAIN.md names no minimum: 2048 is the government CA's current size (probable)"""
    ec_curves: Texts = ("secp256r1", "secp384r1", "secp521r1")
    """the elliptic curves an uploaded certificate's EC key may be on; other key types (DSA,
    Ed25519 …) are refused (`CERT_KEY_TOO_WEAK`)"""
    overlap_days: float = Field(30.0, ge=0)
    """rollover: after a unit's newer certificate is added, its older ones still verify the
    unit's packages this many days, then retire (sealing uses the newest at once)"""
    crl_dir: OptionalPath = None
    """a folder of CRL files (DER or PEM) read at each CRL refresh; none by default"""
    crl_urls: Texts = ()
    """CRLs fetched over HTTP(S) at each refresh"""
    crl_from_distribution_points: bool = False
    """also fetch the CRL distribution points named in registered certificates (only where the
    deployment allows the network)"""
    crl_refresh_hours: float = Field(0.0, ge=0, json_schema_extra={"shown": "0 (never)"})
    """how often the `crls` job refreshes the CRLs and applies them, and once at start (0 =
    never; `docgw units crls --refresh` by hand)"""
    crl_timeout_seconds: float = Field(30.0, gt=0)
    """one CRL download's time limit"""


class DeliverySettings(Section):
    workers: int = 2
    """delivery workers per process"""
    batch_size: int = 20
    """recipients claimed per round"""
    lease_seconds: float = 120.0
    """after this, an unfinished claim is `unconfirmed` and resent"""
    idle_poll_seconds: float = 0.5
    """how often an idle worker looks for due work"""
    send_timeout_seconds: float = 60.0
    """one delivery attempt's limit (then: outcome unknown, `PEER_OUTCOME_UNKNOWN` /
    `PEER_TIMEOUT`)"""


class RetrySettings(Section):
    base_seconds: float = 5.0
    """the delay after the first failed attempt; it doubles per attempt (exponential backoff).
    More than 0"""
    max_delay_seconds: float = 3600.0
    """the longest delay between two attempts; at least `base_seconds`"""
    max_attempts: int = 12
    """after this many attempts → `failed`; at least 1"""
    jitter: float = 0.5
    """the fraction of each delay that is random (0 = none, 1 = "full jitter")"""

    @model_validator(mode="after")
    def _within_the_policys_limits(self) -> RetrySettings:
        """The retry policy's own limits, refused as configuration naming the table."""
        try:
            self.policy()
        except ValueError as exc:
            raise PydanticCustomError("setting_rule", str(exc)) from exc
        return self

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            base_seconds=self.base_seconds,
            max_delay_seconds=self.max_delay_seconds,
            max_attempts=self.max_attempts,
            jitter=self.jitter,
        )


class DeadlineSettings(Section):
    workday_start: str = "07:30"
    """start of the working day (`"HH:MM"`, Vietnam time)"""
    workday_end: str = "17:00"
    """end of the working day (`"HH:MM"`)"""
    morning_end: str = "12:00"
    """end of the working morning (`"HH:MM"`): "at the latest the next working morning\""""
    urgent_send_minutes: int = 30
    """"immediately" for priority ≥ 1 (a positive whole number)"""
    holidays: Texts = ()
    """ISO dates that are not working days, as strings: `["2026-09-02"]`"""


class SecureInboxSettings(Section):
    """The listener that receives from secure-network peers (mutual TLS)."""

    enabled: bool = False
    """run the secure inbox (`POST /inbox` over mutual TLS, for secure-network peers) in
    `docgw serve`"""
    host: str = "127.0.0.1"
    """where it listens"""
    port: int = 8443
    """the port it listens on"""
    cert_file: OptionalPath = Field(None, json_schema_extra={"shown": _FIRST_UNITS_CERT})
    """its server certificate"""
    key_file: OptionalPath = Field(None, json_schema_extra={"shown": _FIRST_UNITS_KEY})
    """its server key"""
    client_ca_file: OptionalPath = Field(None, json_schema_extra={"shown": _KEYS_CA})
    """the CA peers' client certificates must chain to; the peer is the unit its certificate
    names, and must be registered and active"""


class ReportSettings(Section):
    """Periodic reports (docs/howto/reports.md)."""

    closing_day: int = Field(25, ge=1, le=28)
    """the day a monthly period closes, 1 to 28: period `2026-11` is 25 October 00:00 …
    24 November 24:00 in the deadlines' timezone (Vietnam); 1 = calendar months"""
    units: Texts = Field((), json_schema_extra={"shown": "[] (the local units)"})
    """the units the scheduled job makes a report for, besides the whole gateway"""
    folder: PathSetting = Path("var/reports")
    """where the scheduled job (and `docgw report` without `--output-dir`) writes reports, each
    file written whole (temporary file, then renamed)"""
    check_minutes: float = 60.0
    """how often the scheduled job looks for a closed period not yet reported (0 = no scheduled
    reports)"""
    weekly: bool = True
    """the scheduled job also makes the last ISO week's reports"""
    smtp_host: str = ""
    """the SMTP server the scheduled reports are mailed through ("" = no e-mail)"""
    smtp_port: int = 587
    """the SMTP server's port"""
    smtp_starttls: bool = True
    """STARTTLS on the SMTP connection; a login (`smtp_username`) needs it"""
    smtp_ca_file: OptionalPath = Field(None, json_schema_extra={"shown": "the system's CAs"})
    """the CA file the SMTP server's certificate must chain to; STARTTLS always verifies the
    certificate and the host name"""
    smtp_username: str = ""
    """SMTP login, where the server wants one, only with `smtp_starttls = true`"""
    smtp_password: OptionalSecret = ""
    """the SMTP password: no default, taken only from `DOCGW_REPORTS__SMTP_PASSWORD` (a non-empty
    value in the file is refused)"""
    mail_from: str = ""
    """the sender of the mail (required once `smtp_host` is set)"""
    mail_to: Texts = ()
    """the recipients of the mail (required once `smtp_host` is set)"""


class BackupSettings(Section):
    dir: PathSetting = Path("backups")
    """where `docgw backup create` and the scheduled backup write, one folder per backup
    ([howto/backup.md](../howto/backup.md))"""
    passphrase: OptionalSecret = ""
    """encrypts each backup's key archive (scrypt → AES-256-GCM); no default: set
    `DOCGW_BACKUP__PASSPHRASE`. `backup create`, `backup verify`, `restore` and the scheduled
    backup refuse to run without it (`BACKUP_PASSPHRASE_MISSING`) unless `backup.recipient_cert`
    is set"""
    recipient_cert: OptionalPath = None
    """a PEM certificate (an escrow key kept offline): each backup's key archive is sealed for it
    (`envelopes/sealing.py`) instead of encrypted with the passphrase, which is then not needed;
    `backup verify` and `restore` need its private key (`--key`)"""
    interval_hours: float = 0.0
    """the scheduled backup's interval (0 = none)"""
    keep: int = Field(7, ge=1)
    """the scheduled backup keeps this many backups in `backup.dir`, newest first, and removes the
    older ones"""


class ArchiveSettings(Section):
    """ASiC-E archive containers (gateway/usecases/archive.py) and their retention."""

    interval_seconds: float = Field(300.0, gt=0)
    """how often the archive job runs (once per tick across processes; only on a gateway with
    `local_units`): it archives what is due, then purges what retention allows"""
    batch: int = Field(100, ge=1)
    """messages archived (and containers purged) per run, at most"""
    retention_days: int = Field(0, ge=0)
    """archive containers of messages older than this are purged by the job — never one under
    legal hold, never one out of date (a status arrived since); 0 = never purged"""
    tsa_url: str | None = None
    """an RFC 3161 timestamp authority (`http(s)://…`, POST `application/timestamp-query`): each
    container gets its token over the signature; none = containers without a timestamp"""
    tsa_timeout_seconds: float = Field(30.0, gt=0)
    """how long to wait for the timestamp authority"""
    signer_unit: str | None = Field(None, json_schema_extra={"shown": "the first local unit"})
    """the local unit whose key signs the containers (must be one of `gateway.local_units`)"""


class DocumentSignatureSettings(Section):
    """The documents' own signatures: the signed PDFs inside packages, verified on receipt and on
    send (gateway/usecases/document_signatures.py, docs/reference/document-signatures.md)."""

    enabled: bool = True
    """verify the documents' own signatures: every PDF attachment of a document received or sent
    ([document-signatures.md](document-signatures.md))"""
    trust_anchors: Paths = Field((), json_schema_extra={"shown": "[] (= `keys.trust_anchors`)"})
    """PEM files of the CAs trusted to issue the certificates PDFs are signed and sealed with (the
    government CA)"""
    trust_dir: OptionalPath = None
    """a folder whose `*.pem`, `*.crt`, `*.cer` and `*.der` files are trusted CA certificates too
    (with `trust_anchors`; either replaces `keys.trust_anchors`)"""
    crl_files: Paths = ()
    """CRL files (DER or PEM) of the trusted CAs, checked besides the revocation data a PDF embeds
    (PAdES LTV); docgw never fetches revocation data over the network"""
    max_pdf_bytes: int = Field(
        64 * 1024 * 1024, ge=1, json_schema_extra={"shown": "67108864 (64 MiB)"}
    )
    """a PDF over this size is not read: verdict `failing`, `PDF_TOO_LARGE`"""
    timeout_seconds: float = Field(30.0, gt=0)
    """each PDF is verified in a separate process (one of a small persistent pool), killed after
    this long — with its pool, replaced for the next PDF: `PDF_TIMEOUT`"""
    memory_mb: int = Field(1024, ge=256)
    """the verifying processes' address space (at least 256): a PDF that needs more ends in
    `PDF_LIMIT_EXCEEDED`"""
    hold_unsigned: Texts = ()
    """sending units whose outgoing documents are **held** (not sent; reason
    `DOCUMENT_UNSIGNED: …`) when one of their PDFs is unsigned; every other unit is only warned"""
    hold_failing: Texts = ()
    """sending units whose outgoing documents are **held** (reason `DOCUMENT_SIGNATURE_FAILING:
    …`) when a PDF's signature fails or the PDF cannot be verified; every other unit is only
    warned"""


class AlertSettings(Section):
    """Health reasons, alerts and the channels' circuit breakers (docs/howto/operate.md)."""

    evaluate_seconds: float = Field(60.0, ge=0)
    """how often the alert rules run (the `alerts` job, once per tick across processes; 0 =
    never) ([howto/operate.md](../howto/operate.md#alerts))"""
    job_failures: int = Field(3, ge=1)
    """a scheduled job whose last this-many runs all failed makes `/healthz` degraded
    (`JOB_FAILING`) and raises an alert; at least 1"""
    max_due_age_seconds: float = Field(900.0, ge=0)
    """`/healthz` is degraded (`QUEUE_LAG`) when the oldest due recipient has waited longer"""
    certificate_days: Annotated[tuple[int, ...], Strict(False)] = Field(
        (60, 30, 7), json_schema_extra={"shown": "[60, 30, 7]"}
    )
    """a certificate (a local unit's, a configured TLS file, a partner unit's registered one)
    expiring within one of these raises `CERTIFICATE_EXPIRING`, anew at each bound crossed;
    `/healthz` is degraded within 7 days for local ones"""
    disk_full_ratio: float = Field(0.9, gt=0, le=1)
    """the spool's (temporary files) or an SQLite database's disk used beyond this share raises
    `DISK_NEARLY_FULL` (more than 0, at most 1)"""
    mail_to: Texts = ()
    """alerts (raised and resolved) are mailed to these, through the `[reports]` SMTP server
    (`smtp_host`, `mail_from`, …, which must then be set)"""
    webhook_url: str = ""
    """alerts are POSTed here as JSON, signed like the webhooks (`Docgw-Signature`,
    `Docgw-Timestamp`, `Docgw-Event-Id`); "" = none"""
    webhook_secret: OptionalSecret = Field("", validate_default=True)
    """the HMAC key of the alert webhook's signature (required with `webhook_url`): no default,
    taken only from `DOCGW_ALERTS__WEBHOOK_SECRET` (a non-empty value in the file is refused)"""
    breaker_failures: int = Field(5, ge=0)
    """a channel's circuit breaker (a unit's, on a `secure` channel) opens after this many
    transport failures in a row (0 = never)"""
    breaker_probe_seconds: float = Field(30.0, gt=0)
    """an open breaker sends one probe this long after opening, the wait doubling with the time
    open up to 10 minutes"""
    drain_batch: int = Field(10, ge=1)
    """after recovery (or `resume`) the backlog drains this many recipients per slice …"""
    drain_interval_seconds: float = Field(1.0, gt=0)
    """… one slice per this many seconds; a slice finding fewer closes the breaker"""

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_has_its_secret(cls, secret: str, info: ValidationInfo) -> str:
        if info.data.get("webhook_url") and not secret:
            raise PydanticCustomError(
                "setting_rule",
                "an alert webhook needs its secret; it has no default: set "
                "DOCGW_ALERTS__WEBHOOK_SECRET",
            )
        return secret


class ConsoleSettings(Section):
    """The operator console's sessions and sign-in throttling
    ([howto/console.md](../howto/console.md))."""

    session_idle_minutes: float = Field(30.0, gt=0)
    """a console session ends after this many minutes without a request"""
    session_max_hours: float = Field(12.0, gt=0)
    """a console session ends this many hours after sign-in, however busy"""
    lock_after: int = Field(5, ge=1)
    """wrong passwords in a row that lock an account (`LOGIN_THROTTLED`); the count is in the
    database, shared by every process"""
    lock_minutes: float = Field(15.0, gt=0)
    """how long a locked account stays locked"""
    ip_failures: int = Field(20, ge=1)
    """failed sign-ins from one address (whatever names it tried) within `ip_window_minutes`
    that make the console refuse that address's sign-ins (`LOGIN_THROTTLED`) until the window
    has passed; counted per process"""
    ip_window_minutes: float = Field(15.0, gt=0)
    """the window of `ip_failures`"""
    trusted_proxies: Texts = ()
    """addresses of reverse proxies in front of docgw: a sign-in coming through one of them is
    counted against the last address its `X-Forwarded-For` names; from any other, the header is
    ignored"""


class LoggingSettings(Section):
    """The log (gateway/logs.py, [howto/operate.md](../howto/operate.md#logs))."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    """the lowest level written; one-shot commands (`send`, `queue`, …) write below `warning` only
    to `logging.file` ([operate.md](../howto/operate.md#logs))"""
    format: Literal["console", "json"] = "console"
    """`console` (one readable line per event) or `json` (one JSON object per line, for a log
    shipper)"""
    file: OptionalPath = None
    """a file the log is appended to (relative: to the config file's folder); `serve`/`worker`
    then write only there; none = standard error"""


# ------------------------------------------------------------------------------------- channels

CHANNEL_KINDS = ("fake", "http_push", "vxp", "soap", "secure", "drop_folder")
#: Kinds that ARE an axis: classified packages are refused there whatever the flags say.
AXIS_KINDS = ("vxp", "soap")
#: The one kind that may carry classified packages (DOMAIN.md §6).
SECURE_KIND = "secure"


class Channel(Section):
    """What every channel has, whatever its kind. The name is its table's key
    (``[channels.NAME]``), not a key of its own."""

    name: str = Field(exclude=True)
    kind: str
    """`vxp` (the national axis), `soap` (a provincial / legacy SOAP axis), `secure`
    (secure-network endpoints over mutual TLS), `http_push` (another docgw's inbox),
    `drop_folder` (hand-off with the local document-management system) or `fake` (in-memory
    stand-in for tests and demos); see [connectors.md](connectors.md). Each kind takes only its
    own keys (below)"""
    axis: bool = False
    """an axis channel: classified packages are refused there, always. `vxp` and `soap` are axes
    whatever this says; a `secure` channel cannot be one"""
    secure: bool = False
    """says again that a `kind = "secure"` channel is secure; refused on any other kind. Only
    `kind = "secure"` carries classified packages, whatever the flags say"""
    retry: RetrySettings | None = Field(None, json_schema_extra={"shown": "none (= `[retry]`)"})
    """a table with the keys of `[retry]`: this channel's retry policy. A key it does not set
    takes the built-in default above, not the value in `[retry]`"""

    @field_validator("secure")
    @classmethod
    def _secure_only_on_the_secure_kind(cls, secure: bool) -> bool:
        """What may carry classified packages is decided by the channel's kind, never by a flag."""
        kind = cls.model_fields["kind"].default
        if secure and kind != SECURE_KIND:
            raise PydanticCustomError(
                "setting_rule",
                f'secure = true is only for kind = "{SECURE_KIND}" (mutual TLS to each '
                f"recipient's registered secure endpoint); a {kind} channel never carries "
                "classified packages",
            )
        return secure

    @property
    def is_axis(self) -> bool:
        return self.axis or self.kind in AXIS_KINDS

    @property
    def is_secure(self) -> bool:
        """Eligible for classified packages: the secure-endpoint kind only, never an axis. A
        flag cannot make another kind secure (``http_push`` posts to one fixed URL without mutual
        TLS; ``fake`` is a test stand-in): the ``secure`` key is refused there."""
        return self.kind == SECURE_KIND and not self.is_axis


class PolledChannel(Channel):
    """A channel docgw fetches from on a schedule."""

    poll_seconds: float = 30.0
    """`vxp`, `soap`: how often to fetch received documents and statuses; `drop_folder`: how often
    to take the outbox and hand received packages over (0 = never)"""


class DirectoryChannel(PolledChannel):
    """An axis with a directory of agencies."""

    directory_sync_hours: float = Field(0.0, json_schema_extra={"shown": "0 (never)"})
    """how often to re-sync the axis directory into the unit registry (0 = never)"""


class FakeChannel(Channel):
    """`fake`: an in-memory stand-in for tests and demos."""

    kind: Literal["fake"] = "fake"
    fail_rate: float = 0.0
    """fraction of sends that fail with a transport error"""
    timeout_rate: float = 0.0
    """fraction of sends that time out after commit"""


class HttpPushChannel(Channel):
    """`http_push`: another docgw's inbox."""

    kind: Literal["http_push"] = "http_push"
    endpoint: str = Field(min_length=1)
    """the peer's `/api/v1/inbox` (required)"""
    token: Secret
    """the peer docgw's API token (create it there: `docgw tokens create --role operator --name
    OUR-NAME`), sent as `Authorization: Bearer …` (required). Set it with
    `DOCGW_CHANNELS__NAME__TOKEN`, never in a committed file; never logged. A peer answering 401
    or 403 fails the recipient at once with `PEER_UNAUTHORIZED` (no retries: fix the token,
    restart, resend)"""


class VxpChannel(DirectoryChannel):
    """`vxp`: the national axis (VXP)."""

    kind: Literal["vxp"] = "vxp"
    endpoint: str = Field(min_length=1)
    """the axis base URL (required)"""
    system_id: str = Field(min_length=1)
    """this system's id on the axis (required)"""
    secret: Secret
    """the shared secret for the request HMAC (required). Set it with
    `DOCGW_CHANNELS__NAME__SECRET`, never in a committed file; never logged"""
    timestamp_format: Literal["sdk", "epoch_millis"] = "sdk"
    """how `XroadVnpt-timestamp` is written: `sdk` (`ddMMyyyy'T'HHmmss+SSSS`, Vietnam time,
    milliseconds on 4 digits) or `epoch_millis`. The default is the official SDK's form, the one
    the real axis is known to accept (DOMAIN.md §5); `epoch_millis` only for a platform that asks
    for it"""
    hash_form: Literal["sdk", "canonical"] = "sdk"
    """how `hash-file` is written: `sdk` (per-byte hex without leading zeros, as the official SDK
    writes it, so the form the real axis is known to accept) or `canonical` (64 hex digits, for a
    platform that compares the text against a standard digest)"""
    delete_agency_param: Literal["AgencyCode", "code"] = "AgencyCode"
    """the header deleteAgency names the unit in: `AgencyCode` (the official SDK's, known to the
    real axis) or `code` (for a platform that wants it)"""
    sent_states_seconds: float = 300.0
    """how often to ask the axis for the per-recipient states of recent sends (0 = never)"""
    directory_full_sync_hours: float = 24.0
    """between whole listings, directory syncs ask only for the changes (getSynchronizeUnit); the
    whole listing again when the last is this old (0 = always the whole listing)"""
    register_units: bool = False
    """when an admin approves a unit request on this channel, register the unit at the axis
    (registerAgency, with the request's contacts); the outcome is kept on the request"""


class SoapChannel(DirectoryChannel):
    """`soap`: a provincial / legacy SOAP axis (LGSP)."""

    kind: Literal["soap"] = "soap"
    endpoint: str = Field(min_length=1)
    """the service URL (required)"""
    system_id: str = ""
    """optional, with `secret`: the WS-Security UsernameToken's Username"""
    secret: OptionalSecret = Field("", validate_default=True)
    """optional, both or neither with `system_id` (PasswordDigest: the secret itself is never
    sent); set it with `DOCGW_CHANNELS__NAME__SECRET`, never in a committed file"""
    receivers: Texts = Field((), json_schema_extra={"shown": "[] (= `gateway.local_units`)"})
    """the units to poll for"""

    @field_validator("secret")
    @classmethod
    def _credential_is_whole(cls, secret: str, info: ValidationInfo) -> str:
        if bool(info.data.get("system_id")) != bool(secret):
            name = str(info.data.get("name", "NAME")).upper()
            raise PydanticCustomError(
                "setting_rule",
                "system_id and secret go together (a WS-Security credential); the secret has "
                f"no default: set DOCGW_CHANNELS__{name}__SECRET",
            )
        return secret


class SecureChannel(Channel):
    """`secure`: secure-network endpoints over mutual TLS (each unit's registered
    `secure_endpoint`)."""

    kind: Literal["secure"] = "secure"
    endpoint: str = ""
    """where an unclassified package goes for a recipient registered without its own
    `secure_endpoint` (a registered one takes precedence), an `https://` URL or the gateway does
    not start (`SECURE_ENDPOINT_INVALID`); a classified package goes only to its recipient's
    registered `secure_endpoint`, never here (`NO_SECURE_ENDPOINT`)"""
    cert_file: OptionalPath = Field(None, json_schema_extra={"shown": _FIRST_UNITS_CERT})
    """our client certificate for mutual TLS"""
    key_file: OptionalPath = Field(None, json_schema_extra={"shown": _FIRST_UNITS_KEY})
    """our client key for mutual TLS"""
    ca_file: OptionalPath = Field(None, json_schema_extra={"shown": _KEYS_CA})
    """the CA that signs peers' server certificates"""

    @field_validator("axis")
    @classmethod
    def _never_an_axis(cls, axis: bool) -> bool:
        if axis:
            raise PydanticCustomError(
                "setting_rule", "a secure-network channel cannot also be an axis channel"
            )
        return axis


class DropFolderChannel(PolledChannel):
    """`drop_folder`: hand-off with the local document-management system through folders."""

    kind: Literal["drop_folder"] = "drop_folder"
    root: PathSetting
    """the folder shared with the local system (required)"""
    sign_ready_packages: bool = False
    """"signed on hand-over": a ready package (`outbox/NAME.edxml`) that carries no signature —
    none, or the official SDK's placeholder `<Signature>` — is signed with its sending unit's key
    when docgw takes it (rebuilt in docgw's form, not byte for byte); a package that carries a
    signature is verified and sent as it is either way, and refused if that signature fails. See
    [connectors.md](connectors.md#the-drop-folder-hand-off-with-the-local-document-management-system)"""


#: One configured channel: the model of its ``kind``.
ChannelSettings = Annotated[
    Union[  # noqa: UP007 - a tagged union pydantic reads from the annotation
        FakeChannel, HttpPushChannel, VxpChannel, SoapChannel, SecureChannel, DropFolderChannel
    ],
    Discriminator("kind"),
]
CHANNEL_MODELS: tuple[type[Channel], ...] = get_args(get_args(ChannelSettings)[0])
assert tuple(m.model_fields["kind"].default for m in CHANNEL_MODELS) == CHANNEL_KINDS


# ------------------------------------------------------------------------------------- the root


class Settings(BaseSettings):
    """The whole configuration. ``Settings()`` is the defaults; :func:`load_settings` reads the
    file and the environment (nothing else does)."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", strict=True, env_prefix=ENV_PREFIX, env_nested_delimiter="__"
    )

    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    gateway: GatewaySettings = GatewaySettings()
    keys: KeySettings = KeySettings()
    certificates: CertificateSettings = CertificateSettings()
    delivery: DeliverySettings = DeliverySettings()
    retry: RetrySettings = RetrySettings()
    deadlines: DeadlineSettings = DeadlineSettings()
    secure_inbox: SecureInboxSettings = SecureInboxSettings()
    reports: ReportSettings = ReportSettings()
    backup: BackupSettings = BackupSettings()
    archive: ArchiveSettings = ArchiveSettings()
    documents: DocumentSignatureSettings = DocumentSignatureSettings()

    alerts: AlertSettings = AlertSettings()
    console: ConsoleSettings = ConsoleSettings()
    logging: LoggingSettings = LoggingSettings()
    channels: tuple[ChannelSettings, ...] = ()
    #: The folder relative paths are resolved against (the config file's folder).
    base_dir: PathSetting = Path(".")

    @field_validator("channels", mode="before")
    @classmethod
    def _channels_by_name(cls, value: Any) -> Any:
        """The file's ``[channels.NAME]`` tables, in order, each named by its key."""
        if isinstance(value, Mapping):
            return tuple(
                {"name": name, **table} if isinstance(table, Mapping) else table
                for name, table in value.items()
            )
        if isinstance(value, tuple):
            return value
        raise PydanticCustomError("setting_rule", "must be a table of channels")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """What is passed, then the sources :func:`load_settings` is reading (the environment it
        is given, over the file); ``Settings()`` alone is the defaults."""
        return (init_settings, *_LOADING.get())

    def channel(self, name: str) -> ChannelSettings:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise SettingsError(f"no channel named {name!r} is configured", element="channels")

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.base_dir / path


# -------------------------------------------------------------------------------------- loading


#: The sources of the load_settings call running in this context (pydantic-settings asks the class
#: for its sources: this hands it the file and the environment of that one call).
_LOADING: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar("_LOADING", default=())


class _TomlFile(TomlConfigSettingsSource):
    """The TOML file, read errors as ``CONFIG_INVALID``; a secret written in it is refused."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            raw = tomllib.loads(Path(file_path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read {file_path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{file_path} is not valid TOML: {exc}") from exc
        reports = raw.get("reports")
        alerts = raw.get("alerts")
        if isinstance(alerts, dict) and alerts.get("webhook_secret"):
            raise SettingsError(
                "a secret is never written in the file: set DOCGW_ALERTS__WEBHOOK_SECRET",
                element="alerts.webhook_secret",
            )
        if isinstance(reports, dict) and reports.get("smtp_password"):
            raise SettingsError(
                "a secret is never written in the file: set DOCGW_REPORTS__SMTP_PASSWORD",
                element="reports.smtp_password",
            )
        return raw


class _Environment(PydanticBaseSettingsSource):
    """``DOCGW_A__B__C=value`` sets ``[a.b] c``, read as the setting's type wants it (see
    :func:`_environment_value`): a secret of digits, ``DOCGW_CHANNELS__AXIS__SECRET=12345678``,
    stays the string it is."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole environment at once

    def __call__(self) -> dict[str, Any]:
        prefix = self.config["env_prefix"]
        between = self.config["env_nested_delimiter"]
        raw: dict[str, Any] = {}
        for name, value in self.environ.items():
            if not name.startswith(prefix):
                continue
            keys = name[len(prefix) :].lower().split(between)
            target = raw
            for depth, key in enumerate(keys[:-1]):
                nested = target.setdefault(key, {})
                if not (isinstance(nested, dict) and _is_table(keys[: depth + 1])):
                    raise SettingsError(
                        f"{name} sets a key inside a setting that is not a table",
                        element=".".join(keys[: depth + 1]),
                    )
                target = nested
            field = setting_field(keys)
            target[keys[-1]] = _environment_value(field, value)
        return raw


#: What a command that uses no channel reads for a channel secret it was not given
#: (``load_settings(channel_secrets=False)``): such a command builds no connector, and
#: ``bootstrap`` refuses to build one with it.
UNUSED_SECRET = "(not loaded: this command uses no channel)"
#: The secrets a channel of each kind cannot do without (soap's only with its system_id).
_REQUIRED_SECRETS = {"vxp": ("secret",), "http_push": ("token",)}


class _UnusedChannelSecrets(PydanticBaseSettingsSource):
    """The lowest source, for commands that use no channel: a placeholder for each required
    channel secret the file and the environment leave out, so that ``docgw queue list`` starts
    on a host that holds no axis secret."""

    def __init__(
        self, settings_cls: type[BaseSettings], sources: list[PydanticBaseSettingsSource]
    ) -> None:
        super().__init__(settings_cls)
        self.sources = sources

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the channels at once

    def __call__(self) -> dict[str, Any]:
        channels: dict[str, dict[str, Any]] = {}
        for source in reversed(self.sources):  # the lowest first: the higher ones override
            tables = source().get("channels")
            for name, table in (tables if isinstance(tables, Mapping) else {}).items():
                if isinstance(table, Mapping):
                    channels.setdefault(name, {}).update(table)
        filled = {}
        for name, table in channels.items():
            kind = table.get("kind")
            keys = _REQUIRED_SECRETS.get(kind if isinstance(kind, str) else "", ())
            if kind == "soap" and table.get("system_id"):
                keys = ("secret",)
            missing = {key: UNUSED_SECRET for key in keys if not table.get(key)}
            if missing:
                filled[name] = missing
        return {"channels": filled} if filled else {}


def load_settings(
    path: Path | None, environ: Mapping[str, str] | None = None, *, channel_secrets: bool = True
) -> Settings:
    """Read the TOML file (if any), apply ``DOCGW_`` overrides, check, and freeze.
    ``channel_secrets=False``: for a command that uses no channel, a channel secret the
    environment does not give is not required (:data:`UNUSED_SECRET`)."""
    environment = _Environment(Settings, os.environ if environ is None else environ)
    sources: list[PydanticBaseSettingsSource] = [environment]
    base_dir = Path(".")
    if path is not None:
        sources.append(_TomlFile(Settings, toml_file=path))
        base_dir = path.resolve().parent
    if not channel_secrets:
        sources.append(_UnusedChannelSecrets(Settings, list(sources)))
    loading = _LOADING.set(tuple(sources))
    try:
        settings = Settings(base_dir=base_dir)
    except ValidationError as exc:
        raise _settings_error(exc, _channel_names(sources)) from None
    finally:
        _LOADING.reset(loading)
    check(settings)
    return settings


# ---------------------------------------------------------------------------- rules across keys


def check(settings: Settings) -> None:
    """Rules across keys; a gateway with a configuration that breaks one does not start. Rules
    about one key or one table are declared on the models above."""
    for code in settings.gateway.local_units:
        parse_strict(code, field="gateway.local_units")
    _check_reports(settings.reports)
    _check_backup(settings.backup)
    unit = settings.archive.signer_unit
    if unit is not None and unit not in settings.gateway.local_units:
        raise SettingsError("must be one of gateway.local_units", element="archive.signer_unit")
    for key in ("hold_unsigned", "hold_failing"):
        for code in getattr(settings.documents, key):
            parse_strict(code, field=f"documents.{key}")

    _check_alerts(settings.alerts, settings.reports)
    for channel in settings.channels:
        if settings.gateway.profile == "secure" and channel.is_axis:
            raise SettingsError(
                'a gateway with profile = "secure" carries classified traffic and must not '
                "have an axis channel",
                element=f"channels.{channel.name}",
            )


def _check_reports(reports: ReportSettings) -> None:
    for code in reports.units:
        parse_strict(code, field="reports.units")
    if reports.smtp_username and not reports.smtp_starttls:
        raise SettingsError(
            "a login needs smtp_starttls = true (the password never travels in clear)",
            element="reports.smtp_starttls",
        )
    if reports.smtp_host and not (reports.mail_from and reports.mail_to):
        raise SettingsError(
            "e-mail delivery needs mail_from and mail_to", element="reports.mail_to"
        )


def _check_alerts(alerts: AlertSettings, reports: ReportSettings) -> None:
    if alerts.mail_to and not (reports.smtp_host and reports.mail_from):
        raise SettingsError(
            "alert e-mail goes through the [reports] SMTP server: set reports.smtp_host and "
            "reports.mail_from",
            element="alerts.mail_to",
        )


def _check_backup(backup: BackupSettings) -> None:
    if backup.interval_hours > 0 and not (backup.passphrase or backup.recipient_cert):
        raise SettingsError(
            "a scheduled backup needs its passphrase (DOCGW_BACKUP__PASSPHRASE)",
            element="backup.passphrase",
        )


# ------------------------------------------------------------------- the declarations, walked


def setting_field(keys: list[str]) -> FieldInfo | None:
    """The declaration of the setting ``keys`` names (``channels``' second key is a channel's
    name; its keys are looked up in every kind), or None where docgw has no such setting."""
    owners: list[type[BaseModel]] = [Settings]
    found: FieldInfo | None = None
    rest = list(keys)
    while rest:
        key = rest.pop(0)
        if owners == [Settings] and key == "channels":
            if not rest:
                return Settings.model_fields["channels"]
            rest.pop(0)  # the channel's name
            owners = list(CHANNEL_MODELS)
            found = None
            continue
        fields = [m.model_fields[key] for m in owners if key in m.model_fields]
        if not fields:
            return None
        found = fields[0]
        owners = [m for m in (_model_of(f.annotation) for f in fields) if m is not None]
        if rest and not owners:
            return None
    return found


def _is_table(keys: list[str]) -> bool:
    """Whether ``keys`` name a table (a section, ``channels``, a channel or its retry) — or
    nothing docgw has, which validation then names."""
    if keys == ["channels"] or (len(keys) == 2 and keys[0] == "channels"):
        return True
    field = setting_field(keys)
    return field is None or _model_of(field.annotation) is not None


def _model_of(hint: Any) -> type[BaseModel] | None:
    """The model a table setting holds (``X`` for ``X | None``), else None."""
    for candidate in (hint, *get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_text(field: FieldInfo | None) -> bool:
    hint = field.annotation if field is not None else None
    return hint in (str, Path) or (
        get_origin(hint) in (Union, type(str | None))
        and {a for a in get_args(hint) if a is not type(None)} <= {str, Path}
    )


def _environment_value(field: FieldInfo | None, text: str) -> Any:
    """A text or path setting takes ``text`` exactly as written — quotes, backslashes and all:
    a secret is never refused or changed for the way it happens to look (``12345678``, ``true``,
    ``"x"``). Any other setting reads it as TOML (numbers, booleans, lists), else as the text
    itself, which validation then refuses with the setting's name."""
    if _is_text(field):
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


# ------------------------------------------------------------ validation errors, in docgw's words

_TYPE_WORDS = {
    "int_type": "must be int",
    "int_from_float": "must be int",
    "bool_type": "must be bool",
    "float_type": "must be float",
    "string_type": "must be str",
    "path_type": "must be a path",
    "is_instance_of": "must be a path",
    "tuple_type": "must be a list",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
}


def _channel_names(sources: list[PydanticBaseSettingsSource]) -> list[str]:
    """The channels' names in the order validation saw them: the file's, then the environment's
    new ones (pydantic-settings merges the sources that way)."""
    names: dict[str, None] = {}
    for source in reversed(sources):
        channels = source().get("channels")
        names |= dict.fromkeys(channels if isinstance(channels, Mapping) else ())
    return list(names)


def _settings_error(exc: ValidationError, channel_names: list[str]) -> SettingsError:
    """The first of pydantic's errors as docgw's ``CONFIG_INVALID``, naming the key as the file
    writes it (``channels.axis.secret``, not the channel's index and kind)."""
    error = exc.errors()[0]
    keys = _keys(error["loc"], channel_names)
    element = ".".join(keys) or "(root)"
    kind, ctx = error["type"], error.get("ctx") or {}
    field = setting_field(keys)
    if kind in ("missing", "string_too_short") and field is not None and field.repr is False:
        variable = f"{ENV_PREFIX}{'__'.join(keys).upper()}"
        message = f"required, and it has no default: set {variable}, never in a committed file"
    elif kind in ("missing", "string_too_short"):
        message = "required"
    elif kind == "extra_forbidden":
        message = "unknown setting"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        message = f"kind must be one of {', '.join(CHANNEL_KINDS)}"
    elif kind == "literal_error":
        message = f"must be {ctx.get('expected', '')}".replace("'", "")
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal"):
        words = {"ge": "at least", "gt": "more than", "le": "at most"}
        bound = next(f"{words[k]} {v}" for k, v in ctx.items() if k in words)
        message = f"must be {bound}"
    else:
        message = _TYPE_WORDS.get(kind, error["msg"])
    return SettingsError(message, element=element)


def _keys(loc: tuple[int | str, ...], names: list[str]) -> list[str]:
    keys = [str(part) for part in loc]
    if len(loc) >= 2 and loc[0] == "channels" and isinstance(loc[1], int):
        keys[1] = names[loc[1]] if loc[1] < len(names) else str(loc[1])
        if len(keys) >= 3 and keys[2] in CHANNEL_KINDS:
            del keys[2]  # the union's tag
    return keys
