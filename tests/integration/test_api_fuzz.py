"""The HTTP API fuzzed from its own OpenAPI document (schemathesis) against a real ``docgw serve``
on loopback — on PostgreSQL where TEST_POSTGRES_URL names one (it refuses a NUL that SQLite
stores), else SQLite: no answer is a 5xx, and every answer is one the document describes (status
code, content type, body schema). Path parameters are now and then a message and a unit that
exist, so the fuzzed bodies reach the handlers' checks rather than stopping at 404. Requests
aiohttp cannot parse (headers over its limits) are problems too — answered by the connection,
before any middleware.

The size is bounded for CI: a fixed number of examples per operation and generation mode, with
Hypothesis derandomized (the same cases on every run) and no example database.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from integration_support import EXAMPLES as EXAMPLES_DIR
from integration_support import SENDER, UNITS, _admin, postgres_url
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.web.openapi import build_document

DOCGW = Path(sys.executable).parent / "docgw"
#: docgw reads DOCGW_* variables as settings: the server gets none from the test's environment.
ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
}
#: Examples per operation and generation mode: enough to reach NUL, lone surrogates, wrong types
#: and missing parts in every field, small enough for CI (about a minute in all).
EXAMPLES = int(os.environ.get("TEST_FUZZ_EXAMPLES", "25"))
#: Appended to every generated string now and then (see _poison); "" leaves the case as it is.
#: (A lone surrogate cannot go here: schemathesis cannot validate or send it. The tests of
#: test_api_hardening.py send it JSON-escaped, and as header bytes that are not UTF-8.)
POISONS = ("", "\x00", "\x1b", "\uffff")
#: Mostly with the admin token and the existing message or unit: the handlers' own checks come
#: after authentication and the lookup.
MOSTLY = st.sampled_from((True, True, True, False))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CASES = [
    (path, method.upper(), mode)
    for path, item in build_document(max_upload_bytes=1, page_size=1)["paths"].items()
    for method, operation in item.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # Nothing to make invalid in an operation without parameters or a body.
    if mode is GenerationMode.POSITIVE or "parameters" in operation or "requestBody" in operation
]


@dataclass(frozen=True)
class Served:
    base_url: str
    token: str
    port: int
    #: A message and a unit that exist, for path parameters.
    message_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docgw(config: Path, *args: str) -> str:
    done = subprocess.run(
        [str(DOCGW), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path) -> Iterator[Served]:
    """``docgw serve`` on SQLite, its units registered and an admin token, as a user sets it up
    with the CLI."""
    home = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    config = home / "docgw.toml"
    url, database = f"sqlite+aiosqlite:///{home}/docgw.db", None
    if (base := postgres_url()) is not None:
        database = f"docgw_fuzz_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
        url = base.rsplit("/", 1)[0] + f"/{database}"
    config.write_text(
        f'[database]\nurl = "{url}"\ncreate = true\n'
        f"[api]\nport = {port}\nmax_upload_bytes = 65536\n"
        f'[gateway]\nlocal_units = ["{UNITS[0]}"]\n'
        f'[keys]\ndir = "{keys_dir}"\n'
        '[channels.axis]\nkind = "fake"\n',
        encoding="utf-8",
    )
    for code in UNITS:
        cert = str(keys_dir / f"{code}.cert.pem")
        docgw(config, "units", "add", code, "--name", f"Đơn vị {code}", "--channel", "axis",
              "--cert", cert)  # fmt: skip
    token = docgw(config, "tokens", "create", "--role", "admin", "--name", "fuzz").split()[-1]
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(DOCGW), "--config", str(config), "serve"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=ENV,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_listening(base_url, process)
        yield Served(base_url=base_url, token=token, port=port, message_id=_submit(base_url, token))
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        if database is not None:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    # Every refusal is a problem: no traceback reached the server's log either.
    assert "api_internal_error" not in (home / "serve.log").read_text(errors="replace")


def _submit(base_url: str, token: str) -> str:
    metadata = (EXAMPLES_DIR / "new-document.json").read_bytes()
    response = requests.post(
        f"{base_url}/api/v1/messages",
        headers={"Authorization": f"Bearer {token}"},
        files={
            "metadata": ("metadata.json", metadata, "application/json"),
            "attachment": ("van-ban.pdf", b"%PDF-1.7 fuzz", "application/pdf"),
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _wait_until_listening(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "docgw serve exited"
        try:
            with urllib.request.urlopen(f"{base_url}/api/v1/openapi.json", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError("docgw serve did not start listening")


@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_no_fuzzed_request_gets_a_server_error_or_an_undocumented_answer(
    served: Served, path: str, method: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{served.base_url}/api/v1/openapi.json")
    operation = schema[path][method]
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(generation_mode=mode),
        with_token=MOSTLY,
        existing=MOSTLY,
        poison=st.sampled_from(POISONS),
    )
    def check(case: schemathesis.Case, with_token: bool, existing: bool, poison: str) -> None:
        if existing and case.path_parameters:
            known = {"id": served.message_id, "code": SENDER}
            case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
        if poison:
            _poison(case, poison)
        headers = served.auth if with_token else {}
        response = case.call(base_url=served.base_url, session=session, headers=headers)
        case.validate_response(response, checks=CHECKS)

    check()


def _poisoned(value: Any, poison: str) -> Any:
    if isinstance(value, str):
        return value + poison
    if isinstance(value, dict):
        return {k: _poisoned(v, poison) for k, v in value.items()}
    if isinstance(value, list):
        return [_poisoned(v, poison) for v in value]
    return value


def _poison(case: schemathesis.Case, poison: str) -> None:
    """Every generated string ends with ``poison``: the characters XML and the database cannot
    carry, which random text reaches too seldom for a bounded run."""
    if isinstance(case.body, dict | list):
        case.body = _poisoned(case.body, poison)
    if case.path_parameters:
        case.path_parameters = _poisoned(case.path_parameters, poison)
    if case.query:
        case.query = _poisoned(case.query, poison)


# -------------------------------------------------------------- what aiohttp answers by itself


def raw_request(served: Served, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library would send these) and read the answer."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")),
                None,
            )  # fmt: skip
            if length is not None and len(body) >= length:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def assert_problem(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> None:
    got_status, headers, body = answer
    assert got_status == status, body
    assert headers["content-type"].startswith("application/problem+json"), headers
    problem = json.loads(body)
    assert problem["code"] == code and problem["status"] == status, problem
    assert problem["type"].endswith(code) and problem["title"] and problem["detail"]
    assert b"Traceback" not in body


def get(path: str, *headers: bytes) -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def test_a_header_over_the_limit_is_a_problem(served: Served) -> None:
    answer = raw_request(served, get("/api/v1/units", b"X-Padding: " + b"a" * 9000))
    assert_problem(answer, 431, "HEADERS_TOO_LARGE")


def test_too_many_headers_is_a_problem(served: Served) -> None:
    many = [f"X-Header-{i}: {i}".encode() for i in range(200)]
    assert_problem(raw_request(served, get("/api/v1/units", *many)), 431, "HEADERS_TOO_LARGE")


def test_a_malformed_request_line_is_a_problem(served: Served) -> None:
    answer = raw_request(served, b"GET /api/v1/units HTTP/1.1 extra\r\nHost: x\r\n\r\n")
    assert_problem(answer, 400, "BAD_REQUEST")


def test_a_bearer_token_that_is_not_utf8_is_401(served: Served) -> None:
    answer = raw_request(served, get("/api/v1/units", b"Authorization: Bearer \xff\xfe\x80abc"))
    assert_problem(answer, 401, "UNAUTHORIZED")


def test_the_control_a_short_header_with_the_token_is_answered(served: Served) -> None:
    """The control for the tests above: the same raw request, within the limits, is served."""
    answer = raw_request(
        served, get("/api/v1/units", f"Authorization: Bearer {served.token}".encode())
    )
    assert answer[0] == 200, answer
    assert json.loads(answer[2])["items"]
