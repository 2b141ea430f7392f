"""What every ``docgw`` subcommand shares: errors, file reading, JSON output, configuration."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import enum
import getpass
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

from envelopes.attachments import AttachmentSource, checked_source
from envelopes.errors import GatewayError
from gateway.bootstrap import Gateway, build
from gateway.logs import configure_logging
from gateway.settings import Settings, load_settings
from gateway.store.database import migrate, require_database

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_CONFIG = Path("docgw.toml")
T = TypeVar("T")


#: ``--attach A --attach B`` and ``--attach A B`` (and both mixed) take every file, in order:
#: "extend" (argparse's default "store" kept only the last ``--attach``).
ATTACH_OPTION: dict[str, Any] = {
    "action": "extend",
    "nargs": "+",
    "default": [],
    "metavar": "FILE",
    "help": "an attachment file (repeatable; several files after one --attach too)",
}


class CliError(GatewayError):
    code = "CLI_ERROR"


class InputFileError(GatewayError):
    code = "FILE_UNREADABLE"


def read_file(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from exc


def opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


def attachment_sources(names: list[str]) -> list[AttachmentSource]:
    """The ``--attach`` files, each checked to be a readable file, with a plain file name and at
    least one byte (:func:`~envelopes.attachments.checked_source`, as the API checks its parts),
    before anything is built or stored."""
    sources = []
    for name in names:
        path = Path(name)
        try:
            size = path.stat().st_size if path.is_file() else None
        except OSError as exc:
            raise InputFileError(f"cannot read attachment {name}: {exc.strerror}") from exc
        if size is None:
            raise InputFileError(f"cannot read attachment {name}: no such file")
        sources.append(checked_source(path.name, size=size, open=opener(path)))
    return sources


def json_default(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)


def moment_text(value: dt.datetime | None, *, utc: bool = False, seconds: bool = False) -> str:
    """A time as the CLI prints it: Vietnam time (``+07``) unless ``--utc``; ``-`` for none."""
    if value is None:
        return "-"
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=dt.UTC)
    shown = value.astimezone(dt.UTC if utc else VIETNAM)
    return shown.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + (
        "Z" if utc else "+07"
    )


def print_json(value: Any) -> None:
    print(json.dumps(value, default=json_default, ensure_ascii=False, indent=2))


def actor(args: Any) -> str:
    """Who acts, for the audit: ``--as NAME``, else the operating-system user (``cli:NAME``)."""
    name = getattr(args, "as_name", None)
    if name:
        return str(name)
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "cli"


def with_actor(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--as NAME`` on a command that acts."""
    parser.add_argument(
        "--as",
        dest="as_name",
        metavar="NAME",
        help="who acts, for the audit (default: the OS user)",
    )
    return parser


def settings_from(args: Any, *, channels: bool = True) -> Settings:
    """``--config FILE``, else ./docgw.toml if present, else the defaults (+ DOCGW_ overrides).
    ``channels=False``: for a command that uses no channel, whose secrets it does not need."""
    path = Path(args.config) if getattr(args, "config", None) else None
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    settings = load_settings(path, channel_secrets=channels)
    configure_logging(settings, service=False)
    return settings


def existing_database(settings: Settings) -> Settings:
    """The settings, once their SQLite file is known to exist (DATABASE_NOT_FOUND otherwise):
    every command but ``docgw init`` works on a database that is already there."""
    if not settings.database.create:
        require_database(settings.database.url)
    return settings


def with_gateway(args: Any, work: Callable[[Gateway], Awaitable[T]], *, channels: bool = True) -> T:
    """Build the gateway from the configuration (migrating the database if it is behind), run
    one use case, close everything. ``channels=False``: a command that uses no channel (the
    queue, the registry, tokens) builds no connector, so it needs no channel secret or TLS
    file; the channels' names and kinds are still known (routing rules, UNKNOWN_CHANNEL)."""

    async def run() -> T:
        settings = existing_database(settings_from(args, channels=channels))
        gateway = await build(settings, connectors=None if channels else {})
        try:
            await migrate(gateway.engine)  # a no-op at the latest revision
            return await work(gateway)
        finally:
            await gateway.close()

    return asyncio.run(run())


def with_store(args: Any, work: Callable[[Gateway], Awaitable[T]]) -> T:
    """:func:`with_gateway` for a command that uses no channel (no secret, no TLS file)."""
    return with_gateway(args, work, channels=False)
