"""The national directory: sync a channel's directory now, and the latest syncs with what each
changed (the same use cases as ``docgw directory`` and the scheduler's ``directory:NAME`` job).

method  path                      roles              calls
GET     /api/v1/directory/syncs   admin, operator    directory.list_syncs
POST    /api/v1/directory/syncs   admin              directory.sync_channel
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import Field, StrictBool

from gateway.usecases import directory
from gateway.web.auth import ADMIN, STAFF, allow
from gateway.web.bodies import Body, Reply, RequiredText, read_body, render
from gateway.web.common import API, GATEWAY, limit, limit_parameter, reject_unknown_parameters
from gateway.web.routes import UNPROCESSABLE, Response, Routes, query_names, query_parameter

ROUTES = Routes(tag="units")


class SyncRequest(Body):
    channel: RequiredText = Field(description="an axis channel's name (vxp or soap)")
    full: StrictBool = Field(False, description="read the whole listing")


class SyncReport(Reply):
    """What one sync changed"""

    id: int | None
    channel: str
    mode: str = Field(description="full or incremental")
    since: dt.datetime | None
    listed: int
    nonconforming: int
    with_qd20: int
    counts: dict[str, int] = Field(
        description="added, renamed, reparented, recoded, reopened, closed, merged"
    )
    changes: dict[str, Any] = Field(
        description="the first 50 changes of each kind; stranded: closed codes that documents "
        "still wait for, with how many"
    )
    stranded: dict[str, int]


class SyncRun(Reply):
    id: int
    channel: str
    mode: str
    since: dt.datetime | None
    started_at: dt.datetime
    finished_at: dt.datetime
    listed: int
    counts: dict[str, int]
    changes: dict[str, Any]


class SyncRuns(Reply):
    """The latest syncs, newest first"""

    items: list[SyncRun]


RUNS_QUERY = [query_parameter("channel", "only this channel's syncs"), limit_parameter()]


@ROUTES.get(
    f"{API}/directory/syncs",
    name="directory_syncs",
    summary="The latest directory syncs, newest first, with what each changed",
    ok={200: SyncRuns},
    parameters=RUNS_QUERY,
)
@allow(STAFF)
async def list_syncs(request: web.Request) -> web.Response:
    query = request.query
    reject_unknown_parameters(query, query_names(RUNS_QUERY))
    runs = await directory.list_syncs(
        request.app[GATEWAY], channel=query.get("channel") or None, limit=limit(query, default=20)
    )
    return render(SyncRuns(items=[SyncRun.model_validate(run) for run in runs]))


@ROUTES.post(
    f"{API}/directory/syncs",
    name="directory_sync",
    summary="Sync a channel's national directory now (the changes since the last sync, or the "
    "whole listing)",
    ok={201: Response(description="Synced", body=SyncReport)},
    errors=(UNPROCESSABLE,),
    body=SyncRequest,
)
@allow(ADMIN)
async def sync_now(request: web.Request) -> web.Response:
    body = await read_body(request, SyncRequest)
    report = await directory.sync_channel(request.app[GATEWAY], body.channel, full=body.full)
    return render(SyncReport.model_validate(dataclasses.asdict(report)), status=201)
