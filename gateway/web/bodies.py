"""Request and response bodies, declared once as pydantic models: the handlers read and render
them, and the OpenAPI document is generated from them (gateway/web/openapi.py).

A refused body keeps docgw's stable codes and element paths, as before the models:

- not JSON, not an object, an unknown key, a wrong type, a missing field: 400 ``BAD_REQUEST``,
  ``element`` the field's path (``staff_info.email``, ``to[0]``);
- a string with a character XML cannot carry: 422 ``TEXT_INVALID``, naming its path; every
  string of the body is checked, in order, after the top level's unknown keys;
- a validator may refuse with a problem code of its own (:func:`refusal`), e.g.
  ``STATUS_CODE_INVALID``.

Text fields are stripped, and blank text is null (``OptionalText``); ``RequiredText`` is text
that must be there and not blank.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from envelopes.errors import GatewayError
from envelopes.xmltext import check_text
from gateway.web.common import json_response
from gateway.web.problems import BadRequest

Model = TypeVar("Model", bound=BaseModel)

#: Custom pydantic error types that are problem codes of their own, by error type.
_REFUSALS: dict[str, type[GatewayError]] = {}


def refusal(error: type[GatewayError]) -> Callable[[str], PydanticCustomError]:
    """A validator's refusal with ``error``'s code (raise the returned error's result)."""
    kind = error.code.lower()
    _REFUSALS[kind] = error

    def make(message: str) -> PydanticCustomError:
        return PydanticCustomError(kind, message)

    return make


class Body(BaseModel):
    """A request body: no unknown keys, no type coercion ("1" is not 1, 1 is not true)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class Reply(BaseModel):
    """A response body. Handlers build it from the use case's result; it is rendered as the
    API always rendered JSON (datetimes in UTC with their offset)."""

    model_config = ConfigDict(from_attributes=True)


def _blank_is_none(value: str | None) -> str | None:
    return None if value is None else (value.strip() or None)


def _required(value: str) -> str:
    text = value.strip()
    if not text:
        raise PydanticCustomError("required", "required")
    return text


#: Text that may be left out or null; stripped, and blank is null.
OptionalText = Annotated[str | None, AfterValidator(_blank_is_none)]
#: Text that must be given, not blank; stripped.
RequiredText = Annotated[str, AfterValidator(_required)]


def bounded_text(max_length: int) -> Any:
    """Optional text of at most ``max_length`` characters (a column's width), counted as sent."""
    return Annotated[
        Annotated[str, Field(max_length=max_length)] | None, AfterValidator(_blank_is_none)
    ]


# ------------------------------------------------------------------------------------ reading


async def read_body(request: web.Request, model: type[Model]) -> Model:
    """The request's JSON body as ``model``, or the problem that names what is wrong."""
    raw = await request.read()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    return parse_body(value, model)


def parse_body(value: object, model: type[Model]) -> Model:
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    # The top level's unknown keys first, here: pydantic cannot name a key that is not text (a
    # lone surrogate, JSON-escaped), and the problem must.
    known = _known_fields(model, ())
    for key in value:
        if key not in known:
            raise BadRequest(f"unknown field (known: {', '.join(known)})", element=key)
    _check_strings(value, "")
    errors: list[ErrorDetails] = []
    try:
        parsed = model.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
    if errors:
        raise _problem(errors[0], model)
    return parsed


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


def element_path(loc: tuple[int | str, ...]) -> str | None:
    """pydantic's location as docgw names elements: ``staff_info.email``, ``to[0].organ_id``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or None


_MESSAGES = {
    "missing": "required",
    "required": "required",
    "string_type": "must be a string",
    "bool_type": "must be true or false (a JSON boolean)",
    "int_type": "must be a whole number",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
}


def _problem(error: ErrorDetails, model: type[BaseModel]) -> GatewayError:
    kind, element = error["type"], element_path(error["loc"])
    if kind in _REFUSALS:
        return _REFUSALS[kind](error["msg"], element=element)
    if kind == "extra_forbidden":
        known = ", ".join(_known_fields(model, error["loc"][:-1]))
        return BadRequest(f"unknown field (known: {known})", element=element)
    if kind == "string_too_long":
        limit = (error.get("ctx") or {}).get("max_length")
        return BadRequest(f"longer than {limit} characters", element=element)
    return BadRequest(_MESSAGES.get(kind, error["msg"]), element=element)


def _known_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model takes at ``loc`` (for "unknown field (known: …)")."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        current = _model_in(field.annotation) if field is not None else None
    if current is None:
        return []
    return [field.alias or name for name, field in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, Annotated, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


# ------------------------------------------------------------------------------------ writing


def render(
    reply: Reply | Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    data = reply.model_dump(by_alias=True) if isinstance(reply, Reply) else reply
    return json_response(data, status=status, headers=headers)
