"""What every ``docgw`` subcommand shares: errors, file reading, JSON output, configuration."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
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
from gateway.store.database import migrate

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


def print_json(value: Any) -> None:
    print(json.dumps(value, default=json_default, ensure_ascii=False, indent=2))


def settings_from(args: Any) -> Settings:
    """``--config FILE``, else ./docgw.toml if present, else the defaults (+ DOCGW_ overrides)."""
    path = Path(args.config) if getattr(args, "config", None) else None
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    settings = load_settings(path)
    configure_logging(settings, service=False)
    return settings


def with_gateway(args: Any, work: Callable[[Gateway], Awaitable[T]]) -> T:
    """Build the gateway from the configuration (migrating the database if it is behind), run
    one use case, close everything."""

    async def run() -> T:
        gateway = await build(settings_from(args))
        try:
            await migrate(gateway.engine)  # a no-op at the latest revision
            return await work(gateway)
        finally:
            await gateway.close()

    return asyncio.run(run())
