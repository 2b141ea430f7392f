"""``docgw alerts [list|ack|evaluate]`` and ``docgw channels list|pause|resume``: the same use
cases as ``/api/v1/alerts`` and ``/api/v1/channels``."""

from __future__ import annotations

import argparse
import getpass

from gateway.bootstrap import Gateway
from gateway.cli.common import print_json, with_gateway
from gateway.store.alerts import AlertRecord, BreakerRecord
from gateway.usecases import alerts, breakers

STATE_VI = {"open": "đang mở", "resolved": "đã hết"}
BREAKER_VI = {
    breakers.CLOSED: "bình thường",
    breakers.OPEN: "mất kết nối",
    breakers.RECOVERING: "đang phục hồi",
    breakers.PAUSED: "tạm dừng",
}


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.actor or getpass.getuser()}"


def _alert_line(alert: AlertRecord) -> str:
    acked = f"  đã xem / acked by {alert.acked_by}" if alert.acked_by else ""
    return (
        f"{alert.raised_at:%Y-%m-%d %H:%M}  {STATE_VI[alert.state]} / {alert.state}  "
        f"{alert.severity}  {alert.rule}  {alert.subject}{acked}\n"
        f"    {alert.text_vi}\n    {alert.text_en}\n    id {alert.id}"
    )


def cmd_alerts(args: argparse.Namespace) -> int:
    state = None if args.all else "open"

    async def work(gateway: Gateway) -> list[AlertRecord]:
        if args.evaluate:
            await alerts.evaluate(gateway)
        return await alerts.listing(gateway, state=state, limit=args.limit)

    found = with_gateway(args, work)
    if args.json:
        print_json([alerts.alert_document(a) for a in found])
        return 0
    if not found:
        print("Không có cảnh báo nào. / No alerts.")
    for alert in found:
        print(_alert_line(alert))
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> None:
        await alerts.acknowledge(gateway, args.id, actor=_actor(args))

    with_gateway(args, work)
    print(f"Đã ghi nhận cảnh báo {args.id}. / Alert {args.id} acknowledged.")
    return 0


def _breaker_line(breaker: BreakerRecord) -> str:
    where = breaker.channel + (f"/{breaker.unit_code}" if breaker.unit_code else "")
    line = f"{where}  {BREAKER_VI[breaker.state]} / {breaker.state}"
    if breaker.failures:
        line += f"  {breaker.failures} lỗi liên tiếp / failures in a row"
    if breaker.state == breakers.PAUSED and breaker.changed_by:
        line += f"  (bởi / by {breaker.changed_by})"
    if breaker.last_error and breaker.state != breakers.CLOSED:
        line += f"\n    {breaker.last_error}"
    return line


def cmd_channels_list(args: argparse.Namespace) -> int:
    found = with_gateway(args, breakers.listing)
    if args.json:
        print_json([breakers.breaker_document(b) for b in found])
        return 0
    for breaker in found:
        print(_breaker_line(breaker))
    return 0


def cmd_channels_change(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> BreakerRecord:
        change = breakers.pause if args.channels_command == "pause" else breakers.resume
        return await change(gateway, args.name, unit=args.unit, actor=_actor(args))

    print(_breaker_line(with_gateway(args, work)))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("alerts", help="open alerts (--all: resolved ones too)")
    parser.add_argument("--all", action="store_true", help="resolved alerts too")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--evaluate", action="store_true", help="evaluate the rules first")
    parser.set_defaults(handler=cmd_alerts)
    group = parser.add_subparsers(dest="alerts_command")
    ack = group.add_parser("ack", help="acknowledge an alert (it stays open while it holds)")
    ack.add_argument("id")
    ack.add_argument("--as", dest="actor", help="who acknowledges (default: the OS user)")
    ack.set_defaults(handler=cmd_ack)

    channels = commands.add_parser("channels", help="channels and their circuit breakers")
    actions = channels.add_subparsers(dest="channels_command", required=True)
    listing = actions.add_parser("list", help="each channel's breaker")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_channels_list)
    for action, text in (("pause", "stop sending on a channel"), ("resume", "send again")):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("name")
        sub.add_argument("--unit", help="one unit's breaker (secure channels)")
        sub.add_argument("--as", dest="actor", help="who acts (default: the OS user)")
        sub.set_defaults(handler=cmd_channels_change)
