"""``docgw queue list|show|resend|cancel|reroute|reply``: the message queue, over the same use
cases, filters and validation as ``/api/v1/messages`` (``usecases/messages.message_filter``: a
filter the API refuses, the CLI refuses with the same code and element)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from envelopes.model import Classification, StatusCode
from gateway.bootstrap import Gateway
from gateway.cli.common import (
    actor,
    moment_text,
    print_json,
    with_actor,
    with_store,
)
from gateway.domain.business import REPLY_CODES, StatusCodeInvalid
from gateway.domain.lifecycle import summarize
from gateway.store.records import MessageRecord
from gateway.store.visibility import readable_text
from gateway.usecases import messages, operations, statuses
from gateway.usecases.errors import ParameterInvalid
from gateway.usecases.operations import Changed

#: The largest page, as on the API (``web/common.MAX_PAGE``).
MAX_PAGE = 200
#: A subject longer than this is cut in the list (``queue show`` prints it whole).
SUBJECT_WIDTH = 40


def _filters(args: argparse.Namespace) -> dict[str, str]:
    """The options as the API's query parameters (an option not given is no filter)."""
    given = {
        "direction": args.direction,
        "kind": args.kind,
        "state": args.state,
        "recipient": args.recipient,
        "sender": args.sender,
        "classification": args.classification,
        "from": args.from_,
        "to": args.to,
        "text": args.text,
        "breached": "true" if args.breached else None,
    }
    return {name: value for name, value in given.items() if value is not None}


def _page_size(args: argparse.Namespace, default: int) -> int:
    if args.limit is None:
        return min(default, MAX_PAGE)
    if not 1 <= args.limit <= MAX_PAGE:
        raise ParameterInvalid(f"must be a whole number from 1 to {MAX_PAGE}", element="limit")
    limit: int = args.limit
    return limit


def subject_text(message: MessageRecord) -> str:
    """The subject a person may read: none for a classified document (store/visibility)."""
    readable = readable_text(message.classification, message.subject)
    if readable is None:
        return "(mật — classified)" if Classification(message.classification).is_classified else "-"
    return readable


def _state(message: MessageRecord) -> str:
    # A received status package has no recipients: no transport state to show.
    return summarize([r.state for r in message.recipients]).value if message.recipients else "-"


def _summary_line(message: MessageRecord, *, utc: bool) -> str:
    recipients = ", ".join(
        f"{r.unit_code}:{r.state.value}{'/' + r.business_status if r.business_status else ''}"
        for r in message.recipients
    )
    subject = subject_text(message)
    if len(subject) > SUBJECT_WIDTH:
        subject = subject[: SUBJECT_WIDTH - 1] + "…"
    return (
        f"{message.id}  {moment_text(message.created_at, utc=utc)}  {message.direction:<3} "
        f"{message.kind:<8} {_state(message):<15} {message.document_id}  "
        f"{subject:<{SUBJECT_WIDTH}}  [{recipients or '-'}]"
    )


def _summary_json(message: MessageRecord) -> dict[str, Any]:
    """A message as the API's list shows it (``MessageSummary``)."""
    return {
        "id": message.id,
        "direction": message.direction,
        "kind": message.kind,
        "document_id": message.document_id,
        "sender": message.sender,
        "classification": message.classification,
        "subject": readable_text(message.classification, message.subject),
        "state": _state(message) if message.recipients else None,
        "created_at": message.created_at,
        "send_due_at": message.send_due_at,
        "recipients": [
            {"unit_code": r.unit_code, "state": r.state, "business_status": r.business_status}
            for r in message.recipients
        ],
    }


def cmd_queue_list(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> messages.Page:
        selection = messages.message_filter(_filters(args), now=gateway.clock(), member_unit=None)
        size = _page_size(args, gateway.settings.api.page_size)
        page = await messages.list_page(gateway, selection, after=None, limit=size)
        items = list(page.items)
        while args.all and page.more:
            last = page.items[-1]
            page = await messages.list_page(
                gateway, selection, after=(last.created_at, last.id), limit=size
            )
            items.extend(page.items)
        return messages.Page(items=items, more=page.more)

    page = with_store(args, work)
    if args.json:
        print_json({"items": [_summary_json(m) for m in page.items], "more": page.more})
        return 0
    if not page.items:
        print("không có văn bản — no messages")
    for message in page.items:
        print(_summary_line(message, utc=args.utc))
    if page.more:
        print(
            f"… còn nữa — more messages: --all shows them all, --limit N (up to {MAX_PAGE}) "
            "a longer page",
            file=sys.stderr,
        )
    return 0


def cmd_queue_show(args: argparse.Namespace) -> int:
    detail = with_store(args, lambda gw: messages.detail(gw, args.id, member_unit=None))
    message = detail.message
    if args.json:
        print_json({**_summary_json(message), **detail.history})
        return 0
    utc = args.utc
    print(_summary_line(message, utc=utc))
    print(f"subject: {subject_text(message)}\nclassification: {message.classification}")
    print(f"send due: {moment_text(message.send_due_at, utc=utc)}")
    for r in message.recipients:
        print(
            f"  {r.unit_code}: {r.state.value} via {r.channel or '-'}, attempts {r.attempt_count}, "
            f"next {moment_text(r.next_attempt_at, utc=utc)}, "
            f"business {r.business_status or '-'}, last error {r.last_error or '-'}"
        )
    print("timeline:")
    for event in detail.history["audit"]:
        moved = ""
        if event["from_state"] or event["to_state"]:
            moved = f" {event['from_state'] or '-'}→{event['to_state'] or '-'}"
        reason = f" {event['reason']}" if event["reason"] else ""
        print(
            f"  {moment_text(event['at'], utc=utc, seconds=True)} {event['actor']}: "
            f"{event['action']}{moved}{reason}"
        )
    for event in detail.history["status_events"]:
        print(
            f"  status {event['status_code']} from {event['reporter']}: "
            f"{event['description'] or '-'}"
        )
    return 0


def _moved(verb: str, changed: Changed) -> int:
    print(f"{verb}: {', '.join(changed.recipients)} → {changed.new_state}")
    return 0


def cmd_queue_resend(args: argparse.Namespace) -> int:
    changed = with_store(
        args,
        lambda gw: operations.resend(
            gw, args.id, reason=args.reason, actor=actor(args), recipient=args.recipient
        ),
    )
    return _moved("queued again", changed)


def cmd_queue_cancel(args: argparse.Namespace) -> int:
    changed = with_store(
        args,
        lambda gw: operations.cancel(
            gw, args.id, reason=args.reason, actor=actor(args), recipient=args.recipient
        ),
    )
    return _moved("cancelled", changed)


def cmd_queue_reroute(args: argparse.Namespace) -> int:
    changed = with_store(
        args,
        lambda gw: operations.reroute(
            gw, args.id, channel=args.channel, reason=args.reason, actor=actor(args)
        ),
    )
    return _moved(f"rerouted via {args.channel}", changed)


def reply_code(value: str) -> StatusCode:
    """A status code the local system may send (as the API's ``POST …/status`` reads it)."""
    if value not in REPLY_CODES:
        raise StatusCodeInvalid(
            f"must be one of {', '.join(REPLY_CODES)} (01 is sent by docgw on arrival)",
            element="code",
        )
    return StatusCode(value)


def cmd_queue_reply(args: argparse.Namespace) -> int:
    code = reply_code(args.code)
    ids = with_store(
        args,
        lambda gw: statuses.reply(
            gw, args.id, code=code, description=args.description, staff=None, actor=actor(args)
        ),
    )
    print(f"status {code.value} queued: {', '.join(ids)}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    queue = commands.add_parser("queue", help="the send/receive queue").add_subparsers(
        dest="queue_command", required=True
    )
    listing = queue.add_parser(
        "list",
        help="messages, newest first (the filters of GET /api/v1/messages)",
        description="Messages, newest first. A filter value that does not exist (--state faild) "
        "is refused (BAD_REQUEST), as the API refuses it.",
    )
    listing.add_argument("--direction", help=" or ".join(messages.CHOICES["direction"]))
    listing.add_argument("--kind", help=" or ".join(messages.CHOICES["kind"]))
    listing.add_argument("--state", help=", ".join(messages.CHOICES["state"]))
    listing.add_argument("--recipient", help="a recipient unit code")
    listing.add_argument("--sender", help="the sender's unit code")
    listing.add_argument("--classification", help=", ".join(messages.CHOICES["classification"]))
    listing.add_argument(
        "--from", dest="from_", help="created at or after: ISO date (Vietnam day) or datetime"
    )
    listing.add_argument("--to", help="created before: ISO datetime, or ISO date (included)")
    listing.add_argument("--text", help="in the subject or document id")
    listing.add_argument("--breached", action="store_true", help="only deadline breaches")
    listing.add_argument(
        "--limit", type=int, help=f"messages per page, 1 to {MAX_PAGE} (default: api.page_size)"
    )
    listing.add_argument("--all", action="store_true", help="every page, not only the first")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--utc", action="store_true", help="times in UTC (default: Vietnam)")
    listing.set_defaults(handler=cmd_queue_list)

    show = queue.add_parser("show", help="one message with its timeline")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.add_argument("--utc", action="store_true", help="times in UTC (default: Vietnam)")
    show.set_defaults(handler=cmd_queue_show)

    for name, handler in (("resend", cmd_queue_resend), ("cancel", cmd_queue_cancel)):
        action = with_actor(
            queue.add_parser(name, help=f"{name} a message's recipients (a reason is required)")
        )
        action.add_argument("id")
        action.add_argument("--reason", required=True)
        action.add_argument("--recipient", help="only this recipient unit (default: all)")
        action.set_defaults(handler=handler)

    reroute = with_actor(
        queue.add_parser("reroute", help="send held or failed recipients through another channel")
    )
    reroute.add_argument("id")
    reroute.add_argument("--channel", required=True, help="a configured channel")
    reroute.add_argument("--reason", required=True)
    reroute.set_defaults(handler=cmd_queue_reroute)

    reply = with_actor(
        queue.add_parser(
            "reply",
            help="send a business status about a message (as POST /api/v1/messages/{id}/status)",
            description="02–06, 15, 16 about a received document (from each local recipient "
            "unit to its sender); 13 about a sent one. 02 and 13 need --description.",
        )
    )
    reply.add_argument("id")
    reply.add_argument("code", help=", ".join(REPLY_CODES))
    reply.add_argument("--description")
    reply.set_defaults(handler=cmd_queue_reply)
