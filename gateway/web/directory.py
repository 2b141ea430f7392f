"""``/api/v1/directory/syncs``: sync a channel's national directory now (admin), and the latest
syncs with what each changed (admin, operator). The same use cases as ``docgw directory`` and the
scheduler's ``directory:NAME`` job."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from gateway.usecases import directory
from gateway.web.auth import ADMIN, STAFF, allow

BODY_FIELDS = ("channel", "full")


@allow(STAFF)
async def list_syncs(request: web.Request) -> web.Response:
    # app.py imports this module to route to it: its helpers are imported when called.
    from gateway.web.app import GATEWAY, _json, _limit, _reject_unknown_parameters

    gateway = request.app[GATEWAY]
    query = request.query
    _reject_unknown_parameters(query, frozenset({"channel", "limit"}))
    runs = await directory.list_syncs(
        gateway, channel=query.get("channel") or None, limit=_limit(query, default=20)
    )
    return _json({"items": runs})


@allow(ADMIN)
async def sync_now(request: web.Request) -> web.Response:
    from gateway.web.app import GATEWAY, _boolean, _json, _read_object, _required_text

    body = await _read_object(request, BODY_FIELDS)
    channel = _required_text(body, "channel")
    full = _boolean(body, "full") if "full" in body else False
    report = await directory.sync_channel(request.app[GATEWAY], channel, full=full)
    return _json(dataclasses.asdict(report), status=201)
