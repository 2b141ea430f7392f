"""docs/grafana/docgw.json charts what ``/metrics`` serves: every metric its queries name is one
that a running gateway's ``/metrics`` exposes (a renamed metric would leave a panel empty)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateway.web.app import create_app

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "docgw.json"
#: A PromQL name of ours; functions, labels and keywords are not ``docgw_…``.
METRIC = re.compile(r"\bdocgw_[a-z0-9_]+\b")


def exposed_series(text: str) -> set[str]:
    """The series names a Prometheus text exposition offers, from its TYPE lines (a histogram's
    series are its _bucket, _sum and _count) and its samples."""
    names = set()
    for kind_line in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        name, kind = kind_line.groups()
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    names |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.MULTILINE))
    return names


def queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_every_dashboard_query_names_a_metric_of_metrics(make_gateway: Any) -> None:
    async def scenario() -> str:
        async with (
            make_gateway() as gw,
            TestClient(TestServer(create_app(gw))) as client,
        ):
            response = await client.get("/metrics")
            assert response.status == 200
            return await response.text()

    exposed = exposed_series(asyncio.run(scenario()))
    assert "docgw_submit_to_sent_seconds_bucket" in exposed  # the scan sees histograms
    found = queries()
    assert len(found) >= 10
    for title, expr in found:
        named = set(METRIC.findall(expr))
        assert named, f"{title!r}: {expr} names no docgw metric"
        assert named <= exposed, f"{title!r}: {sorted(named - exposed)} not in /metrics"
    charted = {name for _, expr in found for name in METRIC.findall(expr)}
    for family in ("docgw_job_last_success_timestamp", "docgw_job_failures_total"):
        assert family in charted
