"""JSON request bodies: read, every string checked as text, every field checked by type, each
refusal naming its field (BAD_REQUEST, TEXT_INVALID, STATUS_CODE_INVALID)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from envelopes.model import StaffInfo, StatusCode
from envelopes.xmltext import check_text
from gateway.usecases.statuses import REPLY_CODES
from gateway.web.problems import BadRequest, StatusCodeInvalid


async def read_object(request: web.Request, known: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object body with only ``known`` keys (a misspelt key is an error, not ignored)."""
    raw = await request.read()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    for key in value:
        if key not in known:
            raise BadRequest(f"unknown field (known: {', '.join(known)})", element=key)
    _check_strings(value, "")
    return value


def _check_strings(value: object, path: str) -> None:
    """Every string in a JSON body (JSON can escape a NUL or a lone surrogate) goes into a
    package or the database: the text rule holds for each, named by its path."""
    if isinstance(value, str):
        check_text(value, element=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{path}[{index}]")


def text(
    body: Mapping[str, Any], key: str, *, where: str = "", limit: int | None = None
) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    path = f"{where}.{key}" if where else key
    if not isinstance(value, str):
        raise BadRequest("must be a string", element=path)
    if limit is not None and len(value) > limit:
        raise BadRequest(f"longer than {limit} characters", element=path)
    return value.strip() or None


def boolean(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise BadRequest("must be true or false (a JSON boolean)", element=key)
    return value


def required_text(body: Mapping[str, Any], key: str) -> str:
    value = text(body, key)
    if value is None:
        raise BadRequest("required", element=key)
    return value


def reply_code(value: Any) -> StatusCode:
    if not isinstance(value, str) or value not in REPLY_CODES:
        raise StatusCodeInvalid(
            f"must be one of {', '.join(REPLY_CODES)} (01 is sent by docgw on arrival)",
            element="code",
        )
    return StatusCode(value)


def staff_info(value: Any) -> StaffInfo | None:
    if value is None:
        return None
    known = ("department", "staff", "mobile", "email")
    if not isinstance(value, dict):
        raise BadRequest("must be an object", element="staff_info")
    for key in value:
        if key not in known:
            raise BadRequest(
                f"unknown field (known: {', '.join(known)})", element=f"staff_info.{key}"
            )
    return StaffInfo(**{key: text(value, key, where="staff_info") for key in known})
