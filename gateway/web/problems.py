"""Every failure of the API as an RFC 9457 problem: ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail`` and docgw's extension members ``code`` (the stable error code of
the GatewayError tree) and ``element`` (the field or element it is about, or null).

The HTTP status follows from the code: see :data:`STATUS_BY_CODE`. Any other GatewayError is an
input docgw understood and refuses (422): bad metadata, unknown unit, a package that does not
verify. Unexpected exceptions become 500 ``INTERNAL_ERROR`` with an incident id; the traceback
goes to the log only, never into the body, which could otherwise leak paths, SQL or key names.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest

from envelopes.errors import GatewayError, SchemaError

log = logging.getLogger("docgw.web")

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "https://docgw.invalid/errors/"


class BadRequest(GatewayError):
    """The request itself is malformed: not JSON, a wrong type, a missing multipart part."""

    code = "BAD_REQUEST"


class PayloadTooLarge(GatewayError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(GatewayError):
    code = "UNSUPPORTED_MEDIA_TYPE"


#: Codes with a status other than 422. Everything else in the GatewayError tree (METADATA_INVALID,
#: UNIT_CODE_INVALID, UNKNOWN_UNIT, REASON_REQUIRED, CERT_INVALID, CONFIG_INVALID, XML_*,
#: PACKAGE_*, ATTACHMENT_INVALID, SIGNATURE_*, SIGNED_*, CERT_*, SEAL_INVALID, UNKNOWN_SENDER,
#: STATUS_CODE_INVALID, …) is 422.
STATUS_BY_CODE: dict[str, int] = {
    BadRequest.code: 400,
    "UNAUTHORIZED": 401,
    "LOGIN_FAILED": 401,
    "CSRF_INVALID": 403,
    "LOGIN_THROTTLED": 429,
    "FORBIDDEN": 403,
    "PEER_NOT_REGISTERED": 403,
    "SENDER_MISMATCH": 403,
    "CLASSIFIED_READER_REFUSED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "REROUTE_REFUSED": 409,
    "RESEND_REFUSED": 409,
    "ILLEGAL_TRANSITION": 409,
    "PACKAGE_NOT_OPENABLE": 409,
    PayloadTooLarge.code: 413,
    UnsupportedMediaType.code: 415,
    "HEADERS_TOO_LARGE": 431,
    "INTERNAL_ERROR": 500,
    "DATABASE_UNAVAILABLE": 503,
}
DEFAULT_STATUS = 422

#: aiohttp's own exceptions (no route, wrong method, body over client_max_size) by status.
_CODE_BY_HTTP_STATUS = {status: code for code, status in STATUS_BY_CODE.items()}


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, DEFAULT_STATUS)


def title_for(code: str) -> str:
    """A stable, human title per code ("SIGNED_HEADER_CHANGED" → "Signed header changed")."""
    return code.replace("_", " ").capitalize()


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    element: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body = {
        "type": TYPE_BASE + code,
        "title": title_for(code),
        "status": status,
        "detail": detail,
        "code": code,
        "element": element,
        **extra,
    }
    return web.Response(
        status=status,
        # "replace": a detail or element may echo a header's bytes that were not UTF-8.
        body=json.dumps(body, ensure_ascii=False).encode("utf-8", "replace"),
        headers={hdrs.CONTENT_TYPE: f"{PROBLEM_TYPE}; charset=utf-8", **(headers or {})},
    )


def from_error(exc: GatewayError) -> web.Response:
    status = status_for(exc.code)
    headers: dict[str, str] = {}
    if status == 401:
        headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="docgw"'
    extra: dict[str, Any] = {}
    if isinstance(exc, SchemaError):
        extra = {"rule": exc.rule, "errors": list(exc.errors)}
    return problem(status, exc.code, exc.message, element=exc.element, headers=headers, **extra)


def from_http_exception(exc: web.HTTPException, request: web.Request) -> web.Response:
    status = exc.status
    code = _CODE_BY_HTTP_STATUS.get(status) or HTTPStatus(status).name
    headers: dict[str, str] = {}
    if hdrs.ALLOW in exc.headers:
        headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
    if status == 404:
        detail = f"no resource at {request.path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.path}"
    else:
        detail = exc.text or exc.reason
    return problem(status, code, detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        # A failure of ours (the database: the store says DATABASE_UNAVAILABLE) is a warning.
        level = logging.WARNING if status_for(exc.code) >= 500 else logging.INFO
        log.log(
            level,
            "api_request_refused",
            extra={
                "event": "api_request_refused",
                "error_code": exc.code,
                "path": request.path,
                "method": request.method,
            },
        )
        return from_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc, request)
    except ConnectionResetError:
        # The client went away mid-request; nobody is left to read an answer.
        log.info("api_client_disconnected", extra={"path": request.path})
        raise
    except Exception:
        incident = uuid.uuid4().hex[:12]
        log.exception(
            "api_internal_error",
            extra={
                "event": "api_internal_error",
                "incident": incident,
                "method": request.method,
                "path": request.path,
            },
        )
        return problem(
            500,
            "INTERNAL_ERROR",
            f"an unexpected error occurred (incident {incident}); the server log has the details",
        )


class _ProblemRequestHandler(web.RequestHandler):
    """aiohttp answers a request it cannot parse (a header line or the request line over 8190
    bytes, more than 128 headers, a malformed request line) itself, in plain text, before any
    middleware runs. Its one seam is the connection's ``handle_error``: here it answers with a
    problem like every other error."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own: logs, and refuses when a response has started already.
        super().handle_error(request, status, exc, message)
        if status >= 500:
            response = problem(
                500, "INTERNAL_ERROR", "an unexpected error occurred; the server log has details"
            )
        elif isinstance(exc, LineTooLong) or (
            isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message
        ):
            response = problem(
                431,
                "HEADERS_TOO_LARGE",
                f"the request line or a header is over {self.max_field_size} bytes, or there "
                f"are more than {self.max_headers} headers",
            )
        else:
            response = problem(status, BadRequest.code, "the request is not well-formed HTTP")
        response.force_close()
        return response


class _ProblemServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer unparseable requests as problems (see
    :class:`_ProblemRequestHandler`). It reaches aiohttp's private ``_make_server`` and the
    server's ``_loop``/``_kwargs``: aiohttp has no public way to change that answer. A test over
    a real ``docgw serve`` pins it (tests/integration/test_api_fuzz.py)."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _ProblemServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
