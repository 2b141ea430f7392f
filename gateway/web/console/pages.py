"""The console's pages and actions. Each handler reads the request, calls the SAME use case or
named query as the API (operations, statuses, registry, downloads, users; usecases/messages.py
with the API's own filter parsing, usecases/messages.message_filter) and renders a template: no rule
lives here or in a template.

A member acts as the API's member token of the unit it currently acts for (a member of several
units switches between them on the account page): ``auth.member_unit`` and the one SQL definition
of who may see a message (store/visibility.py, through ``messages.visible_message`` and
``MessageFilter.visible_to_unit``) decide what it sees, so changing an id in the URL gives the
API's 404.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import hdrs, web
from multidict import MultiDictProxy

from envelopes.errors import GatewayError
from envelopes.model import Classification
from envelopes.xmltext import check_text
from gateway.bootstrap import Gateway
from gateway.domain.business import RECEIVER_REPLY_CODES, REPLY_CODES, reply_code
from gateway.domain.lifecycle import TransportState
from gateway.store import audit_queries, message_queries, overview
from gateway.store.records import MessageRecord, UnitRecord
from gateway.usecases import (
    alerts,
    breakers,
    certificates,
    downloads,
    jobs,
    operations,
    package_check,
    registrations,
    registry,
    statuses,
    tokens,
    users,
)
from gateway.usecases import messages as reading
from gateway.usecases.errors import Forbidden, NotFound, ReasonRequired
from gateway.usecases.messages import message_filter
from gateway.usecases.parameters import choice
from gateway.usecases.statuses import VIETNAM
from gateway.usecases.tokens import Principal, Role
from gateway.web.auth import member_unit
from gateway.web.certificates import DEFAULT_DAYS as EXPIRY_DAYS
from gateway.web.certificates import MAX_DAYS as EXPIRY_MAX_DAYS
from gateway.web.common import send_chunks
from gateway.web.console.security import (
    ADMIN,
    CONSOLE_GATEWAY,
    EVERYONE,
    INLINE_CSP,
    LOGIN_CSRF_COOKIE,
    LOGIN_THROTTLE,
    SECURITY_HEADERS,
    SESSION,
    SESSION_COOKIE,
    SESSION_ID,
    STAFF,
    account_page,
    base_context,
    check_login_csrf,
    client_address,
    login_csrf,
    open_page,
    page,
    set_cookie,
)
from gateway.web.integration import _attachment_number, _stream, content_disposition
from gateway.web.messages import decode_cursor, encode_cursor
from gateway.web.problems import BadRequest, status_for

PAGE_SIZE = 50
#: A bulk action or a CSV export covers at most this many messages (the filter narrows it).
BULK_MAX = 500
CSV_MAX = 10_000
UNIT_TREE_MAX = 1000
REASON_MAX = 1000
#: The Now page's chart: delivery attempts per hour over this many hours.
CHART_HOURS = 24
CHART_BAR = 12
CHART_HEIGHT = 80
#: Open alerts listed on the Now page (the Alerts page lists them all).
NOW_ALERTS = 10
#: The console's own message filters, beside the API's (usecases/messages.message_filter).
KINDS = reading.KINDS
#: The status codes a person replies with, by the direction of the document (business.py).
REPLIES_IN = RECEIVER_REPLY_CODES
REPLIES_OUT = tuple(c for c in REPLY_CODES if c not in RECEIVER_REPLY_CODES)
#: Cells a spreadsheet would take as a formula are prefixed with ' (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _gateway(request: web.Request) -> Gateway:
    return request.app[CONSOLE_GATEWAY]


def _principal(request: web.Request) -> Principal:
    return request[SESSION].principal


def _actor(request: web.Request) -> str:
    """Who the audit trail names: the person."""
    return request[SESSION].user.name


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    response = aiohttp_jinja2.render_template(
        template, request, {**base_context(request), **context}
    )
    response.set_status(status)
    return response


def _is_htmx(request: web.Request) -> bool:
    return bool(request.headers.get("HX-Request"))


def _url(request: web.Request, name: str, **parts: str) -> str:
    return str(request.app.router[name].url_for(**parts))


# ------------------------------------------------------------------------------------ login


@open_page
async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, error=None, status=200)


def _login_page(request: web.Request, *, error: GatewayError | None, status: int) -> web.Response:
    token = login_csrf(request)
    response = render(request, "login.html", {"login_csrf": token, "error": error}, status=status)
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token)
    return response


@open_page
async def log_in(request: web.Request) -> web.StreamResponse:
    await check_login_csrf(request)
    form = await request.post()
    name, password = _field(form, "name"), _field(form, "password")
    try:
        session_id = await users.log_in(
            _gateway(request),
            name,
            password,
            address=client_address(request),
            throttle=request.app[LOGIN_THROTTLE],
        )
    except (users.LoginFailed, users.LoginThrottled) as exc:
        return _login_page(request, error=exc, status=status_for(exc.code))
    response = see_other(_url(request, "console_now"))
    set_cookie(response, request, SESSION_COOKIE, session_id)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@page(EVERYONE)
@account_page
async def log_out(request: web.Request) -> web.StreamResponse:
    await users.log_out(_gateway(request), request[SESSION_ID])
    response = see_other(_url(request, "console_login"))
    response.del_cookie(SESSION_COOKIE, path="/console")
    return response


def see_other(location: str) -> web.Response:
    """A 303 that carries cookies (a raised HTTPSeeOther skips the response middlewares)."""
    return web.Response(status=303, headers={hdrs.LOCATION: location})


def _field(form: MultiDictProxy[Any], name: str, *, limit: int = REASON_MAX) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest("must be text", element=name)
    if len(value) > limit:
        raise BadRequest(f"longer than {limit} characters", element=name)
    return check_text(value, element=name).strip()


# -------------------------------------------------------------------------------------- now


@page(EVERYONE)
async def now(request: web.Request) -> web.Response:
    return render(request, "now.html", await _now_context(request))


@page(EVERYONE)
async def now_panel(request: web.Request) -> web.Response:
    return render(request, "now_panel.html", await _now_context(request))


async def _now_context(request: web.Request) -> dict[str, Any]:
    gateway = _gateway(request)
    unit = member_unit(_principal(request))
    moment = gateway.clock()
    async with gateway.reader.connect() as conn:
        backlog = await overview.backlog(conn, now=moment, unit=unit)
        stuck = await overview.stuck_recipients(conn, unit=unit)
        breached = await message_queries.list_messages(
            conn,
            message_queries.MessageFilter(breached_before=moment, visible_to_unit=unit),
            limit=PAGE_SIZE,
        )
        since = _hour(moment) - dt.timedelta(hours=CHART_HOURS - 1)
        hourly = await overview.attempts_per_hour(conn, since=since, unit=unit)
        latency = await overview.send_latency_per_hour(conn, since=since, unit=unit)
    staff = _principal(request).role in STAFF
    operations_now: dict[str, Any] = {"troubled": [], "failing_jobs": {}, "open_alerts": []}
    if staff:  # what the API shows staff only (channels, alerts); a member sees its units'
        operations_now = {
            "troubled": [b for b in await breakers.listing(gateway) if b.state != breakers.CLOSED],
            "failing_jobs": {
                name: n for name, n in (await jobs.consecutive_failures(gateway)).items() if n
            },
            "open_alerts": await alerts.listing(gateway, state="open", limit=NOW_ALERTS),
        }
    ages = [label for label, _ in overview.AGE_BUCKETS] + [overview.OLDEST_BUCKET]
    table: dict[tuple[str, str], dict[str, int]] = {}
    for state, channel, age, count in backlog:
        table.setdefault((state, channel), dict.fromkeys(ages, 0))[age] += count
    channels = sorted(gateway.channels)
    per_channel = {c: 0 for c in channels}
    for (_, channel), counts in table.items():
        per_channel[channel] = per_channel.get(channel, 0) + sum(counts.values())
    return {
        "ages": ages,
        "backlog": sorted(table.items()),
        "stuck": stuck,
        "breached": breached,
        "channels": per_channel,
        "now_at": moment,
        "chart": _chart(hourly, moment),
        "latency": _latency_chart(latency, moment),
        "staff": staff,
        "admin": _principal(request).role is Role.ADMIN,
        **operations_now,
    }


def _hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _chart(rows: list[tuple[str, bool, int]], moment: dt.datetime) -> dict[str, Any]:
    """Attempts per hour of the last CHART_HOURS hours as SVG bars (no script: the CSP holds)."""
    counts: dict[tuple[str, bool], int] = {(hour, ok): n for hour, ok, n in rows}
    first = _hour(moment) - dt.timedelta(hours=CHART_HOURS - 1)
    bars: list[dict[str, Any]] = []
    for index in range(CHART_HOURS):
        start = first + dt.timedelta(hours=index)
        key = start.strftime("%Y-%m-%dT%H")
        bars.append(
            {
                "x": index * CHART_BAR,
                "label": start.astimezone(VIETNAM).strftime("%H:00"),
                "sent": counts.get((key, True), 0),
                "failed": counts.get((key, False), 0),
            }
        )
    top = max([b["sent"] + b["failed"] for b in bars] + [1])
    for bar in bars:
        bar["sent_h"] = round(CHART_HEIGHT * bar["sent"] / top, 1)
        bar["failed_h"] = round(CHART_HEIGHT * bar["failed"] / top, 1)
    return {
        "bars": bars,
        "top": top,
        "width": CHART_HOURS * CHART_BAR,
        "height": CHART_HEIGHT,
        "bar": CHART_BAR - 2,
        "total_sent": sum(b["sent"] for b in bars),
        "total_failed": sum(b["failed"] for b in bars),
    }


def _latency_chart(
    rows: list[tuple[str, float, float, int]], moment: dt.datetime
) -> dict[str, Any]:
    """Submission → sent per hour of the last CHART_HOURS hours: each hour's mean as a bar."""
    found = {hour: (mean, longest, count) for hour, mean, longest, count in rows}
    first = _hour(moment) - dt.timedelta(hours=CHART_HOURS - 1)
    bars: list[dict[str, Any]] = []
    for index in range(CHART_HOURS):
        start = first + dt.timedelta(hours=index)
        mean, longest, count = found.get(start.strftime("%Y-%m-%dT%H"), (0.0, 0.0, 0))
        bars.append(
            {
                "x": index * CHART_BAR,
                "label": start.astimezone(VIETNAM).strftime("%H:00"),
                "mean": round(mean, 1),
                "longest": round(longest, 1),
                "count": count,
            }
        )
    top = max([b["mean"] for b in bars] + [1.0])
    for bar in bars:
        bar["h"] = round(CHART_HEIGHT * bar["mean"] / top, 1)
    count = sum(b["count"] for b in bars)
    return {
        "bars": bars,
        "width": CHART_HOURS * CHART_BAR,
        "height": CHART_HEIGHT,
        "bar": CHART_BAR - 2,
        "count": count,
        "mean": round(sum(b["mean"] * b["count"] for b in bars) / count, 1) if count else 0.0,
        "longest": max(b["longest"] for b in bars),
    }


# --------------------------------------------------------------------------------- messages


def _selection(request: web.Request, query: Mapping[str, str]) -> message_queries.MessageFilter:
    """The API's filter (usecases/messages.message_filter: same parameters, same errors, same
    unit rule), with the console's channel."""
    gateway = _gateway(request)
    return message_filter(
        query,
        now=gateway.clock(),
        member_unit=member_unit(_principal(request)),
        channels=gateway.channels,
    )


FILTER_NAMES = (
    "text", "direction", "state", "kind", "sender", "recipient", "channel", "classification",
    "from", "to", "breached",
)  # fmt: skip


def _filter_query(query: Mapping[str, str]) -> dict[str, str]:
    return {k: query[k] for k in FILTER_NAMES if query.get(k)}


@page(EVERYONE)
async def messages(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    query = request.query
    selection = _selection(request, query)
    after = decode_cursor(query.get("cursor"))
    found = await reading.list_page(gateway, selection, after=after, limit=PAGE_SIZE)
    rows = found.items
    filters = _filter_query(query)
    next_url = None
    if found.more:
        cursor = encode_cursor(rows[-1])
        next_url = "?" + urllib.parse.urlencode({**filters, "cursor": cursor})
    context = {
        "rows": [_row(m) for m in rows],
        "filters": filters,
        "filter_qs": urllib.parse.urlencode(filters),
        "next_url": next_url,
        "states": [s.value for s in TransportState],
        "classifications": [c.value for c in Classification],
        "channels": sorted(gateway.channels),
        "kinds": KINDS,
    }
    template = "messages_results.html" if _is_htmx(request) else "messages.html"
    return render(request, template, context)


def _row(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": message.id,
        "created_at": message.created_at,
        "direction": message.direction,
        "kind": message.kind,
        "document_id": message.document_id,
        "code": message.code,
        "sender": message.sender,
        "recipients": [r.unit_code for r in message.recipients],
        "classification": message.classification,
        "subject": message.subject,
        "state": reading.transport_state(message),
    }


@page(EVERYONE)
async def messages_csv(request: web.Request) -> web.StreamResponse:
    """The filtered list as CSV (UTF-8 with a BOM, for spreadsheets), streamed a page at a time."""
    gateway = _gateway(request)
    selection = _selection(request, request.query)
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: "text/csv; charset=utf-8",
            hdrs.CONTENT_DISPOSITION: 'attachment; filename="docgw-messages.csv"',
        }
    )
    await response.prepare(request)
    await response.write("\ufeff".encode())
    await response.write(_csv_line(CSV_COLUMNS))
    async for message in _all(gateway, selection, CSV_MAX):
        row = _row(message)
        row["recipients"] = " ".join(row["recipients"])
        row["created_at"] = _vn(message.created_at)
        await response.write(_csv_line(row[c] for c in CSV_COLUMNS))
    await response.write_eof()
    return response


CSV_COLUMNS = (
    "id", "created_at", "direction", "kind", "document_id", "code", "sender", "recipients",
    "classification", "subject", "state",
)  # fmt: skip


def _csv_line(values: Iterable[object]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow([_cell(v) for v in values])
    return out.getvalue().encode()


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _vn(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


async def _all(
    gateway: Gateway, selection: message_queries.MessageFilter, most: int
) -> AsyncIterator[MessageRecord]:
    after: tuple[dt.datetime, str] | None = None
    given = 0
    while given < most:
        found = await reading.list_page(
            gateway, selection, after=after, limit=min(200, most - given)
        )
        for message in found.items:
            yield message
        given += len(found.items)
        if not found.more or not found.items:
            return
        after = (found.items[-1].created_at, found.items[-1].id)


# ---------------------------------------------------------------------------- one message


async def _visible_message(request: web.Request) -> MessageRecord:
    """The message if the person may see it (the API's rule, store/visibility.py), else the
    API's 404."""
    return await reading.visible_message(
        _gateway(request), request.match_info["id"], member_unit=member_unit(_principal(request))
    )


@page(EVERYONE)
async def message(request: web.Request) -> web.Response:
    """The message, its timelines, its package's signature checked again and its attachments
    (usecases/package_check.py), and each PDF's own signature verdict (as the API's
    ``documents``)."""
    context = await _message_context(request)
    checked = await package_check.check_stored(
        _gateway(request), context["m"], reader=_principal(request)
    )
    return render(request, "message.html", {**context, "check": checked})


@page(EVERYONE)
async def message_state(request: web.Request) -> web.Response:
    return render(request, "message_state.html", await _message_context(request))


async def _message_context(request: web.Request) -> dict[str, Any]:
    """The message and its timelines as the API's GET …/{id} reads them (messages.detail)."""
    gateway = _gateway(request)
    principal = _principal(request)
    shown = await reading.detail(
        gateway, request.match_info["id"], member_unit=member_unit(principal)
    )
    found, history = shown.message, shown.history
    replies: tuple[str, ...] = ()
    if found.kind == "document":
        replies = REPLIES_IN if found.direction == "in" else REPLIES_OUT
    return {
        "m": found,
        "state": reading.transport_state(found),
        "history": history,
        "staff": principal.role in STAFF,
        "replies": replies,
        "channels": sorted(gateway.channels),
        "classified": Classification(found.classification).is_classified,
        "documents": shown.documents,
        "now_at": gateway.clock(),
    }


ACTIONS = {"resend": operations.resend, "cancel": operations.cancel}


def _confirmed_reason(form: MultiDictProxy[Any]) -> str:
    """Every action needs a reason and the confirmation box ticked."""
    reason = _field(form, "reason")
    if not reason:
        raise ReasonRequired("cần nêu lý do / a reason is required", element="reason")
    if form.get("confirm") != "yes":
        raise BadRequest("hãy xác nhận thao tác / tick the confirmation", element="confirm")
    return reason


@page(STAFF)
async def act(request: web.Request) -> web.StreamResponse:
    gateway = _gateway(request)
    found = await _visible_message(request)
    form = await request.post()
    reason = _confirmed_reason(form)
    action = request.match_info["action"]
    if action == "reroute":
        await operations.reroute(
            gateway, found.id, channel=_field(form, "channel"), reason=reason, actor=_actor(request)
        )
    else:
        await ACTIONS[action](
            gateway,
            found.id,
            reason=reason,
            actor=_actor(request),
            recipient=_field(form, "recipient") or None,
        )
    return await _after_action(request, found.id)


async def _after_action(request: web.Request, message_id: str) -> web.StreamResponse:
    if _is_htmx(request):
        return await message_state(request)
    raise web.HTTPSeeOther(_url(request, "console_message", id=message_id))


@page(EVERYONE)
async def reply(request: web.Request) -> web.StreamResponse:
    """A status reply (02–06, 15, 16 to a received document; 13 about a sent one), as the API's
    POST …/status: a member only for its own unit, checked before anything else."""
    gateway = _gateway(request)
    found = await _visible_message(request)
    form = await request.post()
    reason = _confirmed_reason(form)
    await statuses.reply(
        gateway,
        found.id,
        code=reply_code(_field(form, "code")),
        description=reason,
        staff=None,
        actor=_actor(request),
        member_unit=member_unit(_principal(request)),
    )
    return await _after_action(request, found.id)


@page(EVERYONE)
async def package(request: web.Request) -> web.StreamResponse:
    found = await _visible_message(request)
    download = await downloads.package(_gateway(request), found, reader=_principal(request))
    return await _stream(request, download)


@page(EVERYONE)
async def attachment(request: web.Request) -> web.StreamResponse:
    number = _attachment_number(request.match_info["n"])
    found = await _visible_message(request)
    download = await downloads.attachment(
        _gateway(request), found, number, reader=_principal(request)
    )
    return await _stream(request, download)


@page(EVERYONE)
async def attachment_view(request: web.Request) -> web.StreamResponse:
    """An attachment shown in the browser: only a PDF or an image whose bytes say so
    (package_check.inline_type), under a CSP of its own; anything else is downloaded. Who may
    read it is the downloads' rule, as for the download."""
    number = _attachment_number(request.match_info["n"])
    found = await _visible_message(request)
    download = await downloads.attachment(
        _gateway(request), found, number, reader=_principal(request)
    )
    chunks = download.chunks
    try:
        first = await anext(chunks, b"")
        shown = package_check.inline_type(download.media_type, first)
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: shown or "application/octet-stream",
                hdrs.CONTENT_DISPOSITION: (
                    "inline" if shown else content_disposition(download.filename)
                ),
                **SECURITY_HEADERS,
                "Content-Security-Policy": INLINE_CSP,
                hdrs.CACHE_CONTROL: "no-store",
            }
        )
    except BaseException:  # send_chunks releases them from here on
        await chunks.aclose()  # type: ignore[attr-defined]
        raise
    response.content_length = download.size
    return await send_chunks(request, response, chunks, first=first)


@page(STAFF)
async def bulk(request: web.Request) -> web.Response:
    """Resend or cancel each selected message (or every one the filter matches, up to
    BULK_MAX): one use-case call per message, each audited; refusals are listed, not fatal."""
    gateway = _gateway(request)
    form = await request.post()
    reason = _confirmed_reason(form)
    action = _field(form, "action")
    if action not in ACTIONS:
        raise BadRequest(f"must be one of {', '.join(ACTIONS)}", element="action")
    if form.get("scope") == "filter":
        filters = dict(urllib.parse.parse_qsl(_field(form, "filter", limit=4000)))
        ids = [m.id async for m in _all(gateway, _selection(request, filters), BULK_MAX)]
    else:
        ids = [v for v in form.getall("id", []) if isinstance(v, str)][:BULK_MAX]
    results = []
    for message_id in ids:
        try:
            changed = await ACTIONS[action](
                gateway, check_text(message_id, element="id"), reason=reason, actor=_actor(request)
            )
            results.append((message_id, True, changed.new_state, ", ".join(changed.recipients)))
        except GatewayError as exc:
            results.append((message_id, False, exc.code, exc.message))
    return render(request, "bulk_result.html", {"action": action, "results": results})


# ------------------------------------------------------------------------------------ units


def _member_units(request: web.Request) -> tuple[str, ...] | None:
    """The units a member looks after (None: staff, every unit)."""
    session = request[SESSION]
    return session.user.units if session.principal.role is Role.MEMBER else None


@page(EVERYONE)
async def units(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    text = _field(request.query, "q", limit=200) or None  # type: ignore[arg-type]
    own = _member_units(request)
    if own is not None:
        found = [(await registry.get_unit(gateway, code)).unit for code in own]
        if text:
            found = [u for u in found if text.casefold() in f"{u.code} {u.name}".casefold()]
    else:
        found = await registry.list_units(gateway, text=text, limit=UNIT_TREE_MAX)
    return render(
        request, "units.html", {"q": text or "", "tree": _tree(found), "flat": bool(text)}
    )


def _tree(found: list[UnitRecord]) -> list[tuple[UnitRecord, list[Any]]]:
    """(unit, children) nodes; a unit whose parent is not listed is a root."""
    codes = {u.code for u in found}
    children: dict[str | None, list[UnitRecord]] = {}
    for unit in found:
        parent = unit.parent_code if unit.parent_code in codes else None
        children.setdefault(parent, []).append(unit)

    def build(parent: str | None, seen: frozenset[str]) -> list[tuple[UnitRecord, list[Any]]]:
        return [
            (u, build(u.code, seen | {u.code}) if u.code not in seen else [])
            for u in children.get(parent, [])
        ]

    return build(None, frozenset())


def _check_own_unit(request: web.Request, code: str) -> None:
    own = _member_units(request)
    if own is not None and code not in own:
        raise NotFound(f"no unit {code}", element="code")


@page(EVERYONE)
async def unit(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    _check_own_unit(request, code)
    detail = await registry.get_unit(_gateway(request), code)
    principal = _principal(request)
    return render(
        request,
        "unit.html",
        {
            "u": detail.unit,
            "certificates": detail.certificates,
            "editable": principal.role in (Role.ADMIN, Role.MEMBER),
            "now_at": _gateway(request).clock(),
            "history": await registrations.history(_gateway(request), code),
        },
    )


@page(ADMIN | {Role.MEMBER})
async def unit_save(request: web.Request) -> web.StreamResponse:
    """A unit's name and a new certificate: what the API lets a member change of its own unit."""
    code = request.match_info["code"]
    _check_own_unit(request, code)
    gateway = _gateway(request)
    form = await request.post()
    existing = (await registry.get_unit(gateway, code)).unit
    name = _field(form, "name", limit=registry_name_limit())
    pem = _field(form, "certificate_pem", limit=20_000) or None
    await registry.register_unit(
        gateway,
        dataclasses.replace(existing, name=name or existing.name),
        certificate_pem=pem,
        actor=_actor(request),
        given=["name"],
    )
    raise web.HTTPSeeOther(_url(request, "console_unit", code=code))


def registry_name_limit() -> int:
    spec = next(s for s in registry.UNIT_FIELD_SPECS if s.name == "name")
    return spec.max_length or REASON_MAX


# ------------------------------------------------------------------------------ admin: users


@page(ADMIN)
async def people(request: web.Request) -> web.Response:
    found = await users.list_users(_gateway(request))
    return render(request, "users.html", {"people": found, "roles": [r.value for r in Role]})


@page(ADMIN)
async def person_add(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    units_given = _field(form, "units").replace(",", " ").split()
    await users.add_user(
        _gateway(request),
        name=_field(form, "name", limit=users.NAME_MAX),
        role=_field(form, "role"),
        password=_field(form, "password"),
        units=units_given,
        language=_field(form, "language") or "vi",
        actor=_actor(request),
    )
    raise web.HTTPSeeOther(_url(request, "console_users"))


@page(ADMIN)
async def person_change(request: web.Request) -> web.StreamResponse:
    gateway, name = _gateway(request), request.match_info["name"]
    form = await request.post()
    if request.match_info["action"] == "disable":
        if name == _actor(request):
            raise Forbidden("không thể tự khóa mình / you cannot disable yourself", element="name")
        await users.disable_user(gateway, name, actor=_actor(request))
    else:
        await users.reset_password(gateway, name, _field(form, "password"), actor=_actor(request))
    raise web.HTTPSeeOther(_url(request, "console_users"))


# ----------------------------------------------------------------------------- admin: tokens


@page(ADMIN)
async def api_tokens(request: web.Request) -> web.Response:
    found = await tokens.list_tokens(_gateway(request))
    return render(request, "tokens.html", {"tokens": found, "roles": [r.value for r in Role]})


@page(ADMIN)
async def api_token_add(request: web.Request) -> web.Response:
    """A new API token, shown on this one answer and never again (only its hash is stored)."""
    form = await request.post()
    name = _field(form, "name", limit=100)
    if not name:
        raise BadRequest("required", element="name")
    token = await tokens.create_token(
        _gateway(request),
        name=name,
        role=_field(form, "role"),
        unit_code=_field(form, "unit") or None,
        actor=_actor(request),
    )
    found = await tokens.list_tokens(_gateway(request))
    context = {"tokens": found, "roles": [r.value for r in Role], "new": (name, token)}
    return render(request, "tokens.html", context, status=201)


@page(ADMIN)
async def api_token_revoke(request: web.Request) -> web.StreamResponse:
    await tokens.revoke_token(_gateway(request), request.match_info["name"], actor=_actor(request))
    raise web.HTTPSeeOther(_url(request, "console_tokens"))


# ---------------------------------------------------------------------------------- account


@page(EVERYONE)
@account_page
async def account(request: web.Request) -> web.Response:
    return render(request, "account.html", {"languages": users.LANGUAGES})


@page(EVERYONE)
@account_page
async def account_change(request: web.Request) -> web.StreamResponse:
    gateway, session = _gateway(request), request[SESSION]
    form = await request.post()
    what = request.match_info["what"]
    if what == "password":
        await users.change_password(
            gateway,
            session.user.name,
            current=_field(form, "current"),
            new=_field(form, "new"),
            keep_session=request[SESSION_ID],
        )
    elif what == "language":
        await users.set_language(gateway, session.user.name, _field(form, "language"))
    else:
        await users.switch_unit(gateway, request[SESSION_ID], session.user, _field(form, "unit"))
    raise web.HTTPSeeOther(_url(request, "console_account"))


# --------------------------------------------------------------- operations: jobs, alerts, channels

#: Operators' actions on no message, shown under the page they were taken on.
RECENT_ACTIONS = 20
ALERT_STATES = ("open", "resolved", "all")


async def _recent(gateway: Gateway, *actions: str) -> list[dict[str, Any]]:
    async with gateway.reader.connect() as conn:
        return await audit_queries.recent_actions(conn, actions, limit=RECENT_ACTIONS)


@page(ADMIN)
async def job_list(request: web.Request) -> web.Response:
    """The scheduled jobs and their last runs (``docgw jobs list``, ``GET /api/v1/jobs``)."""
    return await _jobs_page(request, ran=None)


async def _jobs_page(
    request: web.Request, *, ran: jobs.RunResult | None, status: int = 200
) -> web.Response:
    gateway = _gateway(request)
    context = {
        "jobs": await jobs.list_jobs(gateway),
        "ran": ran,
        "recent": await _recent(gateway, jobs.RUN_ACTION),
        "now_at": gateway.clock(),
    }
    return render(request, "jobs.html", context, status=status)


@page(ADMIN)
async def job_run(request: web.Request) -> web.Response:
    """Run a job now (``docgw jobs run``, ``POST /api/v1/jobs/{name}/run``), with a reason."""
    form = await request.post()
    reason = _confirmed_reason(form)
    result = await jobs.run_now(
        _gateway(request), request.match_info["name"], actor=_actor(request), reason=reason
    )
    return await _jobs_page(request, ran=result)


@page(STAFF)
async def alert_list(request: web.Request) -> web.Response:
    """Alerts, newest first (``docgw alerts``, ``GET /api/v1/alerts``): open ones by default."""
    gateway = _gateway(request)
    state = choice(request.query, "state", ALERT_STATES) or "open"
    found = await alerts.listing(gateway, state=None if state == "all" else state, limit=PAGE_SIZE)
    context = {
        "alerts": found,
        "state": state,
        "states": ALERT_STATES,
        "recent": await _recent(gateway, alerts.ACK_ACTION),
    }
    return render(request, "alerts.html", context)


@page(STAFF)
async def alert_ack(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    reason = _confirmed_reason(form)
    await alerts.acknowledge(
        _gateway(request), request.match_info["aid"], actor=_actor(request), reason=reason
    )
    raise web.HTTPSeeOther(_url(request, "console_alerts"))


@page(STAFF)
async def channel_list(request: web.Request) -> web.Response:
    """Each channel's circuit breaker (``docgw channels list``, ``GET /api/v1/channels``)."""
    gateway = _gateway(request)
    found = await breakers.listing(gateway)
    context = {
        "breakers": found,
        "secure": {name for name, info in gateway.channels.items() if info.is_secure},
        "recent": await _recent(gateway, breakers.PAUSED_ACTION, breakers.RESUMED_ACTION),
    }
    return render(request, "channels.html", context)


@page(STAFF)
async def channel_change(request: web.Request) -> web.StreamResponse:
    """Pause or resume a channel (or one unit's breaker on a secure channel), with a reason."""
    gateway = _gateway(request)
    name = request.match_info["name"]
    form = await request.post()
    reason = _confirmed_reason(form)
    unit_code = _field(form, "unit", limit=35) or None
    change = breakers.pause if request.match_info["action"] == "pause" else breakers.resume
    await change(gateway, name, unit=unit_code, actor=_actor(request), reason=reason)
    raise web.HTTPSeeOther(_url(request, "console_channels"))


# ---------------------------------------------------------------------- unit requests, expiry

#: The request states a list shows ("all": every state).
REQUEST_STATES = (*registrations.STATES, "all")
#: What a unit's versions record (store/registrations.add_version's callers); another action
#: is shown as written.
VERSION_ACTIONS = (
    "registered", "updated", "imported", "approved", "deactivated", "reactivated",
    "certificate_revoked",
)  # fmt: skip
#: A certificate given with a request, pasted or uploaded (PEM).
PEM_MAX = 20_000


@page(EVERYONE)
async def unit_requests(request: web.Request) -> web.Response:
    """Unit requests, newest first (``docgw units requests``, ``GET /api/v1/unit-requests``):
    a member sees those made for the unit it acts for and asks for a new one; staff see every
    request, pending ones by default, and an admin approves or refuses each."""
    return await _requests_page(request)


async def _requests_page(
    request: web.Request,
    *,
    asked: Mapping[str, str] | None = None,
    refused: GatewayError | None = None,
) -> web.Response:
    gateway = _gateway(request)
    principal = _principal(request)
    staff = principal.role in STAFF
    state = choice(request.query, "state", REQUEST_STATES) or ("pending" if staff else "all")
    found = await registrations.list_requests(
        gateway,
        state=None if state == "all" else state,
        member_unit=member_unit(principal),
        limit=PAGE_SIZE,
    )
    own = member_unit(principal) or ""
    context = {
        "requests": found,
        "state": state,
        "states": REQUEST_STATES,
        "admin": principal.role is Role.ADMIN,
        "may_ask": principal.role in (Role.ADMIN, Role.MEMBER),
        "channels": sorted(gateway.channels),
        # A refused request's form keeps what was typed (not the certificate) and says why.
        "asked": {"parent_code": own, **(asked or {})},
        "refused": refused,
    }
    status = status_for(refused.code) if refused is not None else 200
    return render(request, "requests.html", context, status=status)


@page(ADMIN | {Role.MEMBER})
async def unit_request_add(request: web.Request) -> web.StreamResponse:
    """Ask for a unit: the API's POST /api/v1/unit-requests (registrations.request_unit), a
    member for the unit it acts for or a unit under it. A refusal is shown above the form, with
    the API's code and status."""
    form = await request.post()
    fields = {name: _field(form, name) for name in registrations.REQUEST_FIELDS}
    code = _field(form, "code", limit=100)
    pems = [p for p in (_field(form, "certificate_pem", limit=PEM_MAX), _pem_file(form)) if p]
    try:
        made = await registrations.request_unit(
            _gateway(request),
            code,
            {k: v for k, v in fields.items() if v},
            certificates=pems,
            actor=_actor(request),
            member_unit=member_unit(_principal(request)),
        )
    except GatewayError as exc:
        return await _requests_page(request, asked={"code": code, **fields}, refused=exc)
    raise web.HTTPSeeOther(_url(request, "console_request", id=str(made.id)))


def _pem_file(form: MultiDictProxy[Any]) -> str:
    """An uploaded certificate file (PEM text), or ""."""
    upload = form.get("certificate_file")
    if not isinstance(upload, web.FileField):
        return ""
    data = upload.file.read(PEM_MAX + 1)
    if not data:
        return ""
    if len(data) > PEM_MAX:
        raise BadRequest(f"larger than {PEM_MAX} bytes", element="certificate_file")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("must be a PEM certificate", element="certificate_file") from None
    return check_text(text, element="certificate_file").strip()


def _request_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise BadRequest("a unit request's id is a number", element="id")
    return int(value)


@page(EVERYONE)
async def unit_request(request: web.Request) -> web.Response:
    """One request, as the API's GET /api/v1/unit-requests/{id}: another unit's member gets
    the API's 404."""
    principal = _principal(request)
    found = await registrations.get_request(
        _gateway(request), _request_id(request), member_unit=member_unit(principal)
    )
    context = {"r": found, "admin": principal.role is Role.ADMIN}
    return render(request, "request.html", context)


@page(ADMIN)
async def unit_request_decide(request: web.Request) -> web.StreamResponse:
    """Approve or refuse a pending request, with a reason and the confirmation (``docgw units
    approve|refuse``, POST …/unit-requests/{id}/approve|refuse): audited with the person's name."""
    request_id = _request_id(request)
    form = await request.post()
    reason = _confirmed_reason(form)
    await registrations.decide(
        _gateway(request),
        request_id,
        approve=request.match_info["action"] == "approve",
        reason=reason,
        actor=_actor(request),
    )
    raise web.HTTPSeeOther(_url(request, "console_request", id=str(request_id)))


@page(STAFF)
async def expiring_certificates(request: web.Request) -> web.Response:
    """The certificates expiring within N days (``docgw units certificates --expiring-days``,
    ``GET /api/v1/certificates/expiring``), soonest first."""
    value = _field(request.query, "days", limit=10) or str(EXPIRY_DAYS)  # type: ignore[arg-type]
    if not value.isascii() or not value.isdigit() or int(value) > EXPIRY_MAX_DAYS:
        raise BadRequest(f"must be a whole number from 0 to {EXPIRY_MAX_DAYS}", element="days")
    found = await certificates.expiring(_gateway(request), days=int(value))
    context = {"certificates": found, "days": int(value), "max_days": EXPIRY_MAX_DAYS}
    return render(request, "expiring.html", context)
