"""One logging setup for every docgw process (structlog over the standard library's logging).

Code logs with the standard library, the event name as the message and its facts as ``extra``::

    log.warning("poll_failed", extra={"channel": name, "error_code": exc.code, "detail": ...})

and this setup writes every such fact: one readable line per event on a terminal (``console``),
or one JSON object per line (``json``) for a log shipper. The event names and their fields are
listed in docs/howto/operate.md (tests/unit/test_log_events.py holds that list to the code).

Where the lines go: ``docgw serve`` and ``docgw worker`` write at ``[logging] level`` to
``[logging] file`` or, without one, to standard error. One-shot commands (``send``, ``queue``, …)
write warnings and errors to standard error — their own output is the answer — and, when a file
is set, every line at ``level`` to that file too, so an operator's action through the CLI is in
the gateway's log with the rest.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

import structlog

from gateway.settings import LoggingSettings, Settings

#: The context fields docgw's events carry (operate.md explains each), in the order a console line
#: shows them first. Others (``kind``, ``remote_id``, ``outcome``, …) follow.
FIELDS: Final = (
    "event",
    "message_id",
    "document_id",
    "recipient",
    "channel",
    "job",
    "operation",
    "outcome",
    "error_code",
    "detail",
    "duration_ms",
)

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: Attributes another formatter may have set on a record before ours sees it: not facts.
_FORMATTED: Final = ("message", "asctime")


def _facts_only(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Without what another formatter set, and without the fields that do not apply (None)."""
    for key in _FORMATTED:
        event.pop(key, None)
    for key in [key for key, value in event.items() if value is None]:
        del event[key]
    return event


_SHARED: Final[list[Any]] = [
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    _facts_only,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written (not when the handler was
    made): a test or an embedding program that swaps it gets the lines, and none goes to a
    closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _formatter(form: str) -> logging.Formatter:
    renderer: Any
    if form == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
        tail: list[Any] = [structlog.processors.format_exc_info, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False, sort_keys=False)
        tail = [renderer]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )


def configure_logging(settings: Settings | None, *, service: bool) -> None:
    """(Re)configure the process's log from ``settings`` (None: warnings to standard error, the
    setup before the configuration is read). ``service``: a long-running ``serve``/``worker``."""
    config = settings.logging if settings is not None else LoggingSettings(level="warning")
    level = _LEVELS[config.level.lower()]
    formatter = _formatter(config.format)
    handlers: list[logging.Handler] = []
    if config.file is not None and settings is not None:
        path = settings.resolve(config.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
        handlers[-1].setLevel(level)
    if not (service and handlers):
        handlers.append(_StandardError())
        handlers[-1].setLevel(level if service else max(level, logging.WARNING))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_docgw", False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._docgw = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(min(h.level for h in handlers))
    # APScheduler says "Running job …" and "… executed successfully" at INFO for every tick (forty
    # lines a second for two 50 ms polls); docgw's own job_run event says what a run did.
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
