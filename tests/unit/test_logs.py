"""The logging setup (gateway/logs.py): level, format and file from [logging] or the environment;
every fact of an event written, as JSON lines or as a readable line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.logs import configure_logging
from gateway.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if getattr(h, "_docgw", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def poll_failed() -> None:
    logging.getLogger("docgw.polling").warning(
        "poll_failed",
        extra={
            "channel": "axis",
            "operation": "pending",
            "error_code": "PEER_UNREACHABLE",
            "detail": "kết nối bị từ chối",
            "duration_ms": 12.5,
        },
    )


def test_level_format_and_file_come_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "DOCGW_LOGGING__LEVEL": "debug",
            "DOCGW_LOGGING__FORMAT": "json",
            "DOCGW_LOGGING__FILE": str(tmp_path / "docgw.log"),
        },
    )
    assert (settings.logging.level, settings.logging.format) == ("debug", "json")
    assert settings.logging.file == tmp_path / "docgw.log"
    for key, value, element in (
        ("LEVEL", "loud", "logging.level"),
        ("FORMAT", "xml", "logging.format"),
    ):
        with pytest.raises(SettingsError) as refused:
            load_settings(None, {f"DOCGW_LOGGING__{key}": value})
        assert refused.value.element == element


def test_json_lines_carry_every_field_of_the_event(tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text('[logging]\nformat = "json"\nfile = "logs/docgw.log"\n', encoding="utf-8")
    configure_logging(load_settings(config, {}), service=True)
    poll_failed()
    logging.getLogger("docgw.jobs").debug("job_run", extra={"job": "poll:axis"})  # below info
    [line] = (tmp_path / "logs" / "docgw.log").read_text(encoding="utf-8").splitlines()
    logged = json.loads(line)
    assert logged == {
        "event": "poll_failed",
        "level": "warning",
        "logger": "docgw.polling",
        "timestamp": logged["timestamp"],
        "channel": "axis",
        "operation": "pending",
        "error_code": "PEER_UNREACHABLE",
        "detail": "kết nối bị từ chối",
        "duration_ms": 12.5,
    }
    assert logged["timestamp"].endswith("Z")


def test_a_terminal_gets_one_readable_line_and_a_command_only_its_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(load_settings(None, {}), service=False)  # a one-shot command
    logging.getLogger("docgw.jobs").info("job_run_requested", extra={"job": "poll:axis"})
    poll_failed()
    [line] = capsys.readouterr().err.splitlines()
    assert "poll_failed" in line and "[docgw.polling]" in line
    assert "channel=axis" in line and "error_code=PEER_UNREACHABLE" in line
    assert "duration_ms=12.5" in line
    configure_logging(load_settings(None, {}), service=True)  # serve: info and up
    logging.getLogger("docgw.jobs").info("job_run_requested", extra={"job": "poll:axis"})
    [line] = capsys.readouterr().err.splitlines()
    assert "job_run_requested" in line and "job=poll:axis" in line
