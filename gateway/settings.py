"""docgw's one typed, frozen configuration, loaded once at the edge (the CLI) from a TOML file
with environment overrides. Nothing else in docgw reads ``os.environ``.

Environment overrides use one prefix and ``__`` between levels:
``DOCGW_DATABASE__URL=postgresql+asyncpg://…`` sets ``[database] url``. A text or path setting
takes the value exactly as written (``DOCGW_CHANNELS__AXIS__SECRET=12345678`` is the string
``"12345678"``, quotes would be kept); any other setting's value is parsed as TOML (numbers,
booleans, lists).

Secure defaults: the API listens on loopback; no secret has a default (API tokens live hashed in
the database; a vxp channel's ``secret`` is empty until set, and the channel does not start).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from gateway.domain.retry import RetryPolicy

ENV_PREFIX = "DOCGW_"


class SettingsError(GatewayError):
    code = "CONFIG_INVALID"


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    #: SQLite file (embedded default) or ``postgresql+asyncpg://user@host/db``.
    url: str = "sqlite+aiosqlite:///var/docgw.db"
    echo: bool = False
    #: PostgreSQL: connections each process keeps open (up to 10 more are opened, then closed, in
    #: bursts). Fewer than the process's concurrent work means a connection opened and closed
    #: per use — a new server process each time. SQLite uses one connection whatever this says.
    pool_size: int = 20


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_upload_bytes: int = 512 * 1024 * 1024
    page_size: int = 50


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    #: "standard", or "secure" for a gateway on the classified side (TSLCD / independent LAN):
    #: it refuses to start if any axis channel is configured.
    profile: str = "standard"
    #: The units this gateway sends for; each needs ``<code>.key.pem`` and ``<code>.cert.pem``.
    local_units: tuple[str, ...] = ()
    #: Where package blobs over ``inline_blob_bytes`` are chunked in the database.
    inline_blob_bytes: int = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class KeySettings:
    dir: Path = Path("keys")
    #: PEM files of CA certificates trusted to issue units' certificates.
    trust_anchors: tuple[Path, ...] = ()
    #: Unit codes whose packages may be signed with RSA-SHA1 (old SDK peers).
    sha1_peers: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DeliverySettings:
    workers: int = 2
    batch_size: int = 20
    #: A claim not finished within this time is presumed dead and becomes ``unconfirmed``.
    lease_seconds: float = 120.0
    idle_poll_seconds: float = 0.5
    send_timeout_seconds: float = 60.0


@dataclass(frozen=True, kw_only=True)
class RetrySettings:
    base_seconds: float = 5.0
    max_delay_seconds: float = 3600.0
    max_attempts: int = 12
    jitter: float = 0.5

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            base_seconds=self.base_seconds,
            max_delay_seconds=self.max_delay_seconds,
            max_attempts=self.max_attempts,
            jitter=self.jitter,
        )


CHANNEL_KINDS = ("fake", "http_push", "vxp", "soap", "secure", "drop_folder")
#: Kinds that ARE an axis: classified packages are refused there whatever the flags say.
AXIS_KINDS = ("vxp", "soap")
#: The one kind that may carry classified packages (DOMAIN.md §6).
SECURE_KIND = "secure"


@dataclass(frozen=True, kw_only=True)
class ChannelSettings:
    """One configured channel.

    ``kind``: ``vxp`` (the national axis), ``soap`` (a provincial/legacy SOAP axis), ``secure``
    (secure-network endpoints over mutual TLS), ``http_push`` (another docgw's inbox),
    ``drop_folder`` (hand-off through folders) or ``fake`` (in-memory stand-in for tests).
    """

    name: str
    kind: str
    endpoint: str = ""
    #: An axis channel (national or provincial): classified packages are refused there.
    axis: bool = False
    #: Only ``kind = "secure"`` (mutual TLS to each recipient's registered secure endpoint) carries
    #: classified packages; ``secure = true`` says so again there and is refused on any other kind.
    secure: bool = False
    #: vxp: this system's id on the axis and its shared secret. The secret has no default: set
    #: it with DOCGW_CHANNELS__<NAME>__SECRET, never in a committed file.
    #: soap: the same pair, optional (both or neither): a WS-Security UsernameToken.
    system_id: str = ""
    secret: str = field(default="", repr=False)  # never in logs or error messages
    #: http_push: the peer inbox's API token (an operator token of the peer docgw), sent as
    #: ``Authorization: Bearer …``. Required, no default: set DOCGW_CHANNELS__<NAME>__TOKEN.
    token: str = field(default="", repr=False)  # never in logs or error messages
    #: vxp: the official SDK's wire forms by default (what the real axis is known to accept):
    #: "sdk" or "epoch_millis" timestamps; "sdk" or "canonical" hash-file form; deleteAgency
    #: naming the unit "AgencyCode" or "code".
    timestamp_format: str = "sdk"
    hash_form: str = "sdk"
    delete_agency_param: str = "AgencyCode"
    #: soap: the units to poll for (default: the gateway's local units).
    receivers: tuple[str, ...] = ()
    #: secure: our unit certificate and key for mutual TLS and the CA that signs peers'
    #: certificates (default: the first local unit's files and keys/ca.cert.pem).
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    #: drop_folder: the folder shared with the local document-management system.
    root: Path | None = None
    #: drop_folder: sign a ready package that carries no signature (none, or the SDK's
    #: placeholder) with its sending unit's key when it is taken from the outbox ("signed on
    #: hand-over"); a package that is signed is verified and sent as it is, either way.
    sign_ready_packages: bool = False
    #: vxp, soap: how often to fetch received documents and statuses (0 = never).
    poll_seconds: float = 30.0
    #: vxp: how often to ask the axis for per-recipient states of recent sends (0 = never).
    sent_states_seconds: float = 300.0
    #: vxp, soap: how often to re-sync the directory into the unit registry (0 = never).
    directory_sync_hours: float = 0.0
    #: fake: fraction of sends that fail with a transport error / time out after commit.
    fail_rate: float = 0.0
    timeout_rate: float = 0.0
    retry: RetrySettings | None = None

    @property
    def is_axis(self) -> bool:
        return self.axis or self.kind in AXIS_KINDS

    @property
    def is_secure(self) -> bool:
        """Eligible for classified packages: the secure-endpoint kind only, never an axis. A
        flag cannot make another kind secure (``http_push`` posts to one fixed URL without mutual
        TLS; ``fake`` is a test stand-in): :func:`check` refuses ``secure = true`` there."""
        return self.kind == SECURE_KIND and not self.is_axis


@dataclass(frozen=True, kw_only=True)
class SecureInboxSettings:
    """The listener that receives from secure-network peers (mutual TLS)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8443
    #: Default: the first local unit's certificate and key, and keys/ca.cert.pem for clients.
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None


@dataclass(frozen=True, kw_only=True)
class ArchiveSettings:
    """ASiC-E archive containers (gateway/usecases/archive.py) and their retention."""

    #: How often the archive job runs (and the retention purge after it).
    interval_seconds: float = 300.0
    #: Messages archived per run, at most.
    batch: int = 100
    #: Containers of messages older than this are purged (never under legal hold); 0 = never.
    retention_days: int = 0
    #: An RFC 3161 timestamp authority (HTTP POST application/timestamp-query); none by default.
    tsa_url: str | None = None
    tsa_timeout_seconds: float = 30.0
    #: The local unit whose key signs the containers; default: the first local unit.
    signer_unit: str | None = None


@dataclass(frozen=True, kw_only=True)
class DeadlineSettings:
    workday_start: str = "07:30"
    workday_end: str = "17:00"
    morning_end: str = "12:00"
    urgent_send_minutes: int = 30
    holidays: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ReportSettings:
    """Periodic reports (docs/howto/reports.md)."""

    #: A monthly period closes on this day (1-28; 1 = calendar months): see gateway/domain/periods.
    closing_day: int = 25
    #: Units the scheduled job reports on, besides the whole gateway (default: the local units).
    units: tuple[str, ...] = ()
    #: Where the scheduled job writes its reports.
    folder: Path = Path("var/reports")
    #: How often the scheduled job looks for a closed period to report on (0 = never).
    check_minutes: float = 60.0
    #: The scheduled job also makes weekly reports (ISO weeks).
    weekly: bool = True
    #: E-mail delivery of the scheduled reports: none while smtp_host is empty.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    #: The CA that signs the SMTP server's certificate (default: the system's trusted CAs).
    smtp_ca_file: Path | None = None
    #: A login needs STARTTLS: the password never travels in clear.
    smtp_username: str = ""
    #: No default, and only from the environment: DOCGW_REPORTS__SMTP_PASSWORD.
    smtp_password: str = field(default="", repr=False)
    mail_from: str = ""
    mail_to: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class BackupSettings:
    #: Where ``docgw backup create`` and the scheduled backup write (one folder per backup).
    dir: Path = Path("backups")
    #: Encrypts the key archive of every backup. No default: set DOCGW_BACKUP__PASSPHRASE.
    passphrase: str = field(default="", repr=False)  # never in logs or error messages
    #: A PEM certificate: seal each backup's key archive for it instead (no passphrase needed;
    #: its private key restores).
    recipient_cert: Path | None = None
    #: The scheduled backup's interval (0 = none) and how many backups it keeps.
    interval_hours: float = 0.0
    keep: int = 7


@dataclass(frozen=True, kw_only=True)
class AlertSettings:
    """Health reasons, alerts and the channels' circuit breakers (docs/howto/operate.md)."""

    #: How often the alert rules are evaluated (0 = never).
    evaluate_seconds: float = 60.0
    #: A job that failed this many runs in a row makes /healthz degraded and raises an alert.
    job_failures: int = 3
    #: /healthz is degraded when the oldest due recipient has waited longer than this.
    max_due_age_seconds: float = 900.0
    #: Certificates expiring within these many days raise an alert (the nearest names it).
    certificate_days: tuple[int, ...] = (60, 30, 7)
    #: The spool or database disk is "nearly full" above this share used (0-1).
    disk_full_ratio: float = 0.9
    #: Alerts go by e-mail to these (through the [reports] SMTP server) …
    mail_to: tuple[str, ...] = ()
    #: … and by a signed POST (Docgw-Signature, as the webhooks) to this URL.
    webhook_url: str = ""
    #: No default, and only from the environment: DOCGW_ALERTS__WEBHOOK_SECRET.
    webhook_secret: str = field(default="", repr=False)
    #: The breaker opens after this many transport failures in a row on a channel (0 = never).
    breaker_failures: int = 5
    #: An open breaker sends one probe this long after opening (doubling to 10 min).
    breaker_probe_seconds: float = 30.0
    #: After recovery the backlog drains this many recipients per slice …
    drain_batch: int = 10
    #: … one slice per this many seconds.
    drain_interval_seconds: float = 1.0


@dataclass(frozen=True, kw_only=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    keys: KeySettings = field(default_factory=KeySettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    deadlines: DeadlineSettings = field(default_factory=DeadlineSettings)
    secure_inbox: SecureInboxSettings = field(default_factory=SecureInboxSettings)
    reports: ReportSettings = field(default_factory=ReportSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    channels: tuple[ChannelSettings, ...] = ()
    #: The folder relative paths are resolved against (the config file's folder).
    base_dir: Path = Path(".")

    def channel(self, name: str) -> ChannelSettings:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise SettingsError(f"no channel named {name!r} is configured", element="channels")

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.base_dir / path


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if any), apply ``DOCGW_`` overrides, check, and freeze."""
    raw: dict[str, Any] = {}
    base_dir = Path(".")
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path} is not valid TOML: {exc}") from exc
        base_dir = path.resolve().parent
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
    _apply_environment(raw, os.environ if environ is None else environ)
    channels_raw = raw.pop("channels", {})
    if not isinstance(channels_raw, dict):
        raise SettingsError("must be a table of channels", element="channels")
    channels = tuple(
        _build(
            ChannelSettings, {"name": name, **_table(value, f"channels.{name}")}, f"channels.{name}"
        )
        for name, value in channels_raw.items()
    )
    settings: Settings = _build(Settings, {**raw, "channels": channels, "base_dir": base_dir}, "")
    for code in settings.gateway.local_units:
        parse_strict(code, field="gateway.local_units")
    check(settings)
    return settings


def _check_archive(settings: Settings) -> None:
    archive = settings.archive
    if archive.interval_seconds <= 0 or archive.tsa_timeout_seconds <= 0:
        raise SettingsError("intervals and timeouts must be positive", element="archive")
    if archive.batch < 1 or archive.retention_days < 0:
        raise SettingsError("batch ≥ 1 and retention_days ≥ 0", element="archive")
    unit = archive.signer_unit
    if unit is not None and unit not in settings.gateway.local_units:
        raise SettingsError("must be one of gateway.local_units", element="archive.signer_unit")


def check(settings: Settings) -> None:
    """Rules across keys; a gateway with a configuration that breaks one does not start."""
    if settings.gateway.profile not in ("standard", "secure"):
        raise SettingsError("must be standard or secure", element="gateway.profile")
    if settings.database.pool_size < 1:
        raise SettingsError("must be at least 1", element="database.pool_size")
    _check_retry(settings.retry, "retry")
    _check_reports(settings.reports)
    _check_backup(settings.backup)
    _check_archive(settings)
    _check_alerts(settings.alerts, settings.reports)
    for channel in settings.channels:
        where = f"channels.{channel.name}"
        if channel.retry is not None:
            _check_retry(channel.retry, f"{where}.retry")
        if channel.kind not in CHANNEL_KINDS:
            raise SettingsError(f"kind must be one of {', '.join(CHANNEL_KINDS)}", element=where)
        _check_classified_rules(channel, settings.gateway.profile, where)
        _check_ready_packages(channel, where)
        if channel.kind in ("vxp", "soap", "http_push") and not channel.endpoint:
            raise SettingsError("an endpoint is required", element=f"{where}.endpoint")
        if channel.kind == "vxp" and not (channel.system_id and channel.secret):
            raise SettingsError(
                f"system_id and secret are required; the secret has no default: set "
                f"DOCGW_CHANNELS__{channel.name.upper()}__SECRET",
                element=f"{where}.secret",
            )
        _check_http_push(channel, where)
        if channel.kind == "soap" and bool(channel.system_id) != bool(channel.secret):
            raise SettingsError(
                f"system_id and secret go together (a WS-Security credential); the secret has "
                f"no default: set DOCGW_CHANNELS__{channel.name.upper()}__SECRET",
                element=f"{where}.secret",
            )
        _check_vxp_forms(channel, where)
        if channel.kind == "drop_folder" and channel.root is None:
            raise SettingsError("a root folder is required", element=f"{where}.root")


#: vxp: the values each wire-form setting takes; the first, the default, is the official SDK's.
VXP_FORMS = {
    "timestamp_format": ("sdk", "epoch_millis"),
    "hash_form": ("sdk", "canonical"),
    "delete_agency_param": ("AgencyCode", "code"),
}


def _check_reports(reports: ReportSettings) -> None:
    if not 1 <= reports.closing_day <= 28:
        raise SettingsError("must be 1 to 28", element="reports.closing_day")
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


def _check_vxp_forms(channel: ChannelSettings, where: str) -> None:
    for key, allowed in VXP_FORMS.items():
        if getattr(channel, key) not in allowed:
            raise SettingsError(f"must be {' or '.join(allowed)}", element=f"{where}.{key}")


def _check_ready_packages(channel: ChannelSettings, where: str) -> None:
    if channel.sign_ready_packages and channel.kind != "drop_folder":
        raise SettingsError(
            "only a drop_folder channel takes ready packages",
            element=f"{where}.sign_ready_packages",
        )


def _check_http_push(channel: ChannelSettings, where: str) -> None:
    """A docgw inbox refuses a push without an operator's token (401): without one the channel
    could only fail, so the gateway does not start."""
    if channel.kind == "http_push" and not channel.token:
        raise SettingsError(
            f"the peer inbox's API token is required; it has no default: set "
            f"DOCGW_CHANNELS__{channel.name.upper()}__TOKEN",
            element=f"{where}.token",
        )


def _check_alerts(alerts: AlertSettings, reports: ReportSettings) -> None:
    if alerts.evaluate_seconds < 0 or alerts.job_failures < 1 or alerts.breaker_failures < 0:
        raise SettingsError(
            "evaluate_seconds ≥ 0, job_failures ≥ 1, breaker_failures ≥ 0", element="alerts"
        )
    if alerts.breaker_probe_seconds <= 0 or alerts.drain_interval_seconds <= 0:
        raise SettingsError("intervals must be positive", element="alerts")
    if alerts.drain_batch < 1 or not 0 < alerts.disk_full_ratio <= 1:
        raise SettingsError("drain_batch ≥ 1 and 0 < disk_full_ratio ≤ 1", element="alerts")
    if alerts.mail_to and not (reports.smtp_host and reports.mail_from):
        raise SettingsError(
            "alert e-mail goes through the [reports] SMTP server: set reports.smtp_host and "
            "reports.mail_from",
            element="alerts.mail_to",
        )
    if alerts.webhook_url and not alerts.webhook_secret:
        raise SettingsError(
            "an alert webhook needs its secret (DOCGW_ALERTS__WEBHOOK_SECRET)",
            element="alerts.webhook_secret",
        )


def _check_backup(backup: BackupSettings) -> None:
    if backup.keep < 1:
        raise SettingsError("must be at least 1", element="backup.keep")
    if backup.interval_hours > 0 and not (backup.passphrase or backup.recipient_cert):
        raise SettingsError(
            "a scheduled backup needs its passphrase (DOCGW_BACKUP__PASSPHRASE)",
            element="backup.passphrase",
        )


def _check_retry(retry: RetrySettings, where: str) -> None:
    """The retry policy's own limits, refused here as configuration (not a traceback at start)."""
    try:
        retry.policy()
    except ValueError as exc:
        raise SettingsError(str(exc), element=where) from exc


def _check_classified_rules(channel: ChannelSettings, profile: str, where: str) -> None:
    """What may carry classified packages is decided by the channel's kind, never by a flag."""
    if profile == "secure" and channel.is_axis:
        raise SettingsError(
            'a gateway with profile = "secure" carries classified traffic and must not '
            "have an axis channel",
            element=where,
        )
    if channel.secure and channel.kind != SECURE_KIND:
        raise SettingsError(
            f'secure = true is only for kind = "{SECURE_KIND}" (mutual TLS to each '
            f"recipient's registered secure endpoint); a {channel.kind} channel never carries "
            "classified packages",
            element=f"{where}.secure",
        )
    if channel.kind == SECURE_KIND and channel.axis:
        raise SettingsError(
            "a secure-network channel cannot also be an axis channel", element=f"{where}.axis"
        )


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError("must be a table", element=where)
    return value


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """``DOCGW_A__B__C=value`` sets ``[a.b] c``, read as the setting's type wants it (see
    :func:`_environment_value`): a secret of digits, ``DOCGW_CHANNELS__AXIS__SECRET=12345678``,
    stays the string it is."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        target = raw
        for depth, key in enumerate(keys[:-1]):
            nested = target.setdefault(key, {})
            if not isinstance(nested, dict):
                raise SettingsError(
                    f"{name} sets a key inside a setting that is not a table",
                    element=".".join(keys[: depth + 1]),
                )
            target = nested
        target[keys[-1]] = _environment_value(_setting_type(keys), value)


def _environment_value(hint: Any, text: str) -> Any:
    """A text or path setting takes ``text`` exactly as written — quotes, backslashes and all:
    a secret is never refused or changed for the way it happens to look (``12345678``, ``true``,
    ``"x"``). Any other setting reads it as TOML (numbers, booleans, lists), else as the text
    itself, which building the settings then refuses with the setting's name."""
    if _optional_inner(hint) in (str, Path):
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _setting_type(keys: list[str]) -> Any:
    """The declared type of the setting ``keys`` names (``channels``' second key is a channel's
    name), or None where docgw has no such setting: building the settings then names it."""
    owner: Any = Settings
    hint: Any = None
    rest = list(keys)
    while rest:
        if not (isinstance(owner, type) and is_dataclass(owner)):
            return None
        key = rest.pop(0)
        if owner is Settings and key == "channels":
            if not rest:
                return None
            rest.pop(0)  # the channel's name
            hint = owner = ChannelSettings
            continue
        hint = get_type_hints(owner).get(key)
        if hint is None:
            return None
        owner = _optional_inner(hint)
    return hint


def _optional_inner(hint: Any) -> Any:
    """``X`` for ``X | None``; any other type as it is."""
    args: tuple[Any, ...] = getattr(hint, "__args__", ())
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return hint


def _build(cls: type[Any], values: Any, where: str) -> Any:
    if isinstance(values, cls):
        return values
    values = _table(values, where or "(root)")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError("unknown setting", element=f"{where}.{unknown[0]}".lstrip("."))
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}".lstrip("."))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc), element=where or "(root)") from exc


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    args: tuple[Any, ...] = getattr(hint, "__args__", ())
    if isinstance(hint, type) and is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SettingsError("must be a list", element=where)
        return tuple(_coerce(args[0], item, where) for item in value)
    if type(None) in args:  # Optional[X]
        inner = next(a for a in args if a is not type(None))
        return None if value is None else _coerce(inner, value, where)
    if hint is Path:
        if not isinstance(value, str | Path):
            raise SettingsError("must be a path", element=where)
        return Path(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        raise SettingsError(f"must be {hint.__name__}", element=where)
    return value
