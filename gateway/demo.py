"""``docgw demo``: the whole exchange on one machine, in one process, told as it happens.

What runs, all on loopback and nothing outside this process (no network, no external service):

* the axis simulator (:mod:`connectors.simulators.axis`, VXP), with one system per gateway on it;
* four gateways, each built by the composition root and run by the same code as ``docgw serve``
  (:func:`gateway.service._run`: API, delivery workers, scheduler, and the secure inbox where
  enabled), each with its own SQLite file, configuration file and API port:

  ====  ==============  =====================  ==========================================
  A     000.00.00.G22   Văn phòng Chính phủ    standard profile, channel ``axis`` (VXP)
  B     000.00.00.H41   UBND tỉnh Nghệ An      standard profile, channel ``axis`` (VXP)
  C     000.00.00.H14   (secure network)       secure profile, channel ``secure`` (mutual TLS)
  D     000.00.00.G01   (secure network)       secure profile, channel ``secure`` (mutual TLS)
  ====  ==============  =====================  ==========================================

  C and D both run a secure inbox: C → D carries the classified document, D → C its 01.

Then the traffic an agency's document-management system would cause, through the use cases:
A → B unclassified (B answers 01 by itself, then 03 as B's registry clerk would), B → A a reply
(ResponseFor), C → D a "mat" document over the secure channel, and A → B a "mat" document that is
held because A (a standard gateway) has no secure channel: the rule that classified never touches
the axis.

Everything lives in one folder (temporary unless ``--dir``): ``keys/``, and ``A/`` … ``D/`` with
each gateway's ``docgw.toml`` and database, so ``docgw --config DIR/A/docgw.toml queue list`` works
beside the running demo. The scheduler polls every second so the story takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import logging
import random
import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from connectors.simulators.axis import AxisState, generate_directory, running_axis
from envelopes import sealing
from envelopes.attachments import AttachmentSource
from envelopes.errors import GatewayError
from envelopes.metadata import DocumentRequest, parse_metadata
from envelopes.model import StaffInfo, StatusCode
from gateway import keystore, service
from gateway.bootstrap import Gateway, build
from gateway.domain.lifecycle import TransportState
from gateway.settings import load_settings
from gateway.store import blobs, message_queries, status_queries
from gateway.store.database import migrate
from gateway.store.records import MessageRecord, RecipientRecord, UnitRecord
from gateway.usecases import registry, statuses, submit, tokens, users

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
HOST = "127.0.0.1"
#: How long one step of the story may take before the demo gives up and says which step.
STEP_TIMEOUT = 60.0
T = TypeVar("T")


class DemoFailed(GatewayError):
    code = "DEMO_FAILED"


@dataclass(frozen=True, kw_only=True)
class DemoUnit:
    letter: str
    code: str
    name: str
    #: On the secure network (profile "secure", channel "secure"), else on the axis.
    secure_side: bool
    #: The axis system serving the unit (axis side only).
    system_id: str = ""


A = DemoUnit(letter="A", code="000.00.00.G22", name="Văn phòng Chính phủ", secure_side=False,
             system_id="vpcp-docgw")  # fmt: skip
B = DemoUnit(letter="B", code="000.00.00.H41", name="UBND tỉnh Nghệ An", secure_side=False,
             system_id="nghean-docgw")  # fmt: skip
C = DemoUnit(letter="C", code="000.00.00.H14", name="Đơn vị C (mạng bảo mật)", secure_side=True)
D = DemoUnit(letter="D", code="000.00.00.G01", name="Đơn vị D (mạng bảo mật)", secure_side=True)
UNITS = (A, B, C, D)
AXIS_CHANNEL, SECURE_CHANNEL = "axis", "secure"


@dataclass(kw_only=True)
class Node:
    """One running gateway of the demo."""

    unit: DemoUnit
    folder: Path
    api_port: int
    inbox_port: int | None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    gateway: Gateway | None = None
    task: asyncio.Task[None] | None = None
    token: str = ""
    #: The operator console's login (name, password) of this gateway.
    console_login: tuple[str, str] = ("", "")

    @property
    def config(self) -> Path:
        return self.folder / "docgw.toml"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def inbox_url(self) -> str | None:
        return f"https://{HOST}:{self.inbox_port}/inbox" if self.inbox_port else None

    @property
    def gw(self) -> Gateway:
        assert self.gateway is not None, "the gateway is not started"
        return self.gateway


# ------------------------------------------------------------------------------------ telling


class Narrator:
    """Prints the story as it happens, each line stamped with the seconds since the start."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def line(self, text: str = "") -> None:
        print(text, flush=True)

    def step(self, title: str) -> None:
        self.line()
        self.line(f"── {title}")

    def say(self, who: str, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.line(f"[{elapsed:5.1f}s] {who}: {text}")


# ------------------------------------------------------------------------------------ the run


@dataclass(kw_only=True)
class Demo:
    home: Path
    narrator: Narrator
    stamp: str
    axis: AxisState
    axis_url: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    results: list[str] = field(default_factory=list)


def run(home: Path | None, *, once: bool) -> int:
    """The ``docgw demo`` entry point: returns the exit code."""
    _utf8_output()
    temporary = home is None
    folder = Path(tempfile.mkdtemp(prefix="docgw-demo-")) if home is None else home.resolve()
    try:
        return asyncio.run(_main(folder, once=once, temporary=temporary))
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


async def _main(home: Path, *, once: bool, temporary: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    _quiet_cancelled_jobs()
    narrator = Narrator()
    narrator.line("docgw demo: two gateways on the national axis (simulated), two on the secure")
    narrator.line(f"network, one process, all on loopback. Folder: {home}")
    demo = Demo(
        home=home,
        narrator=narrator,
        # Unique per run, so a re-used --dir gets new document ids (receivers deduplicate).
        stamp=dt.datetime.now(VIETNAM).strftime("%H%M%S"),
        axis=AxisState(seed=0),
    )
    code = 0
    async with contextlib.AsyncExitStack() as stack:
        try:
            story = asyncio.create_task(_story(demo, stack, once=once, temporary=temporary))
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({story, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if story in done:
                code = story.result()
                if code == 0 and not once:
                    await stop.wait()
            else:
                narrator.line()
                narrator.line("interrupted: stopping before the story ended")
                story.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await story
            stopped.cancel()
        except DemoFailed as exc:
            narrator.line()
            narrator.line(f"demo failed: {exc}")
            code = 1
        finally:
            narrator.line()
            narrator.line("stopping the gateways and the axis simulator …")
            await _stop_all(demo)
    narrator.line("stopped cleanly.")
    return code


async def _story(
    demo: Demo, stack: contextlib.AsyncExitStack, *, once: bool, temporary: bool
) -> int:
    narrator = demo.narrator
    narrator.step("Setting up")
    keys = demo.home / "keys"
    await asyncio.to_thread(keystore.init_keys, keys, [u.code for u in UNITS])
    narrator.say("keys", f"development CA and one signing certificate per unit in {keys}")
    await _start_axis(demo, stack)
    _plan_nodes(demo)
    for node in demo.nodes.values():
        await _start_node(demo, node)
    await _unclassified(demo)
    await _classified_secure(demo)
    await _classified_held(demo)
    _summary(demo)
    _where_to_look(demo, once=once, temporary=temporary)
    return 0


async def _start_axis(demo: Demo, stack: contextlib.AsyncExitStack) -> None:
    axis = demo.axis
    # A small national directory, then the demo's units under their own names.
    axis.load_directory(generate_directory(500))
    for unit in (A, B):
        axis.add_agency(code=unit.code, name=unit.name)
        # A fresh secret per run: the simulator's, written only into the demo's folder.
        demo.secrets[unit.letter] = secrets.token_hex(16)
        axis.add_system(unit.system_id, demo.secrets[unit.letter].encode(), [unit.code])
    demo.axis_url = await stack.enter_async_context(running_axis(axis, host=HOST))
    systems = ", ".join(f"{u.system_id} ({u.letter} {u.code})" for u in (A, B))
    demo.narrator.say("axis", f"VXP simulator on {demo.axis_url}; systems {systems}")


def _plan_nodes(demo: Demo) -> None:
    for unit in UNITS:
        demo.nodes[unit.letter] = Node(
            unit=unit,
            folder=demo.home / unit.letter,
            api_port=_free_port(),
            inbox_port=_free_port() if unit.secure_side else None,
        )
    for node in demo.nodes.values():
        node.folder.mkdir(parents=True, exist_ok=True)
        node.config.write_text(_config_text(demo, node), encoding="utf-8")


def _free_port() -> int:
    """A port that binds now, below Linux's ephemeral range (32768-60999): a port bind(0) hands
    out may be given to an outgoing connection before the gateway binds it (a CI run failed so)."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _toml(value: object) -> str:
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def _config_text(demo: Demo, node: Node) -> str:
    unit = node.unit
    lines = [
        f"# docgw demo, gateway {unit.letter}: {unit.code} {unit.name}. Written by `docgw demo`.",
        "[database]",
        f"url = {_toml('sqlite+aiosqlite:///' + str(node.folder / 'docgw.db'))}",
        "[api]",
        f'host = "{HOST}"',
        f"port = {node.api_port}",
        "[gateway]",
        f'profile = "{"secure" if unit.secure_side else "standard"}"',
        f"local_units = [{_toml(unit.code)}]",
        "# One keys folder for the whole demo; a real gateway holds only its own units' keys.",
        "[keys]",
        f"dir = {_toml(demo.home / 'keys')}",
        f"trust_anchors = [{_toml(demo.home / 'keys' / keystore.CA_CERT)}]",
        "[delivery]",
        "workers = 2",
        "idle_poll_seconds = 0.5",
        "send_timeout_seconds = 15",
        "[retry]",
        "base_seconds = 1",
        "max_delay_seconds = 5",
    ]
    if unit.secure_side:
        lines += [
            "[secure_inbox]",
            "enabled = true",
            f'host = "{HOST}"',
            f"port = {node.inbox_port}",
            f"[channels.{SECURE_CHANNEL}]",
            'kind = "secure"',
        ]
    else:
        lines += [
            f"[channels.{AXIS_CHANNEL}]",
            'kind = "vxp"',
            f"endpoint = {_toml(demo.axis_url)}",
            f"system_id = {_toml(unit.system_id)}",
            "# The simulator's secret, made up for this run. A real axis secret never goes in a",
            "# file: set DOCGW_CHANNELS__AXIS__SECRET.",
            f"secret = {_toml(demo.secrets[unit.letter])}",
            "poll_seconds = 1",
            "sent_states_seconds = 2",
        ]
    return "\n".join(lines) + "\n"


def _registry_entry(at: DemoUnit, unit: DemoUnit, demo: Demo) -> UnitRecord:
    """How gateway ``at`` knows ``unit``: a channel only within the same network."""
    channel: str | None = None
    endpoint: str | None = None
    if unit.secure_side == at.secure_side:
        channel = SECURE_CHANNEL if unit.secure_side else AXIS_CHANNEL
        endpoint = demo.nodes[unit.letter].inbox_url if unit.secure_side else None
    return UnitRecord(
        code=unit.code,
        name=unit.name,
        channel=channel,
        secure_endpoint=endpoint,
        is_local=unit is at,
    )


async def _start_node(demo: Demo, node: Node) -> None:
    unit = node.unit
    # The folder's configuration is the whole truth: DOCGW_ variables of the shell do not apply.
    settings = load_settings(node.config, {})
    gateway = node.gateway = await build(settings)
    await migrate(gateway.engine)
    keys = demo.home / "keys"
    for other in UNITS:
        await registry.register_unit(
            gateway,
            _registry_entry(unit, other, demo),
            certificate_pem=(keys / f"{other.code}.cert.pem").read_text(encoding="utf-8"),
            actor="demo",
        )
    node.token = await tokens.create_token(gateway, name=f"demo-admin-{demo.stamp}", role="admin")
    node.console_login = (f"admin-{demo.stamp}", secrets.token_urlsafe(12))
    await users.add_user(
        gateway,
        name=node.console_login[0],
        role="admin",
        password=node.console_login[1],
        actor="demo",
    )
    profile = settings.gateway.profile
    channels = ", ".join(f"{c.name} ({c.kind})" for c in settings.channels)
    demo.narrator.say(
        unit.letter,
        f"gateway for {unit.code} {unit.name}: profile {profile}, channel {channels}; "
        f"4 units and their certificates registered",
    )
    node.task = asyncio.create_task(service._run(gateway, node.stop, True))
    await _listening(node)


async def _listening(node: Node, timeout: float = STEP_TIMEOUT) -> None:
    """Until the gateway's API accepts connections (or its task died, which is then raised). As
    long as any other step: four gateways importing docgw at once from a freshly installed venv
    (a cold page cache) on two cores may take more than the 30 s this was."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _raise_if_dead(node)
        try:
            _, writer = await asyncio.open_connection(HOST, node.api_port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise DemoFailed(
                    f"gateway {node.unit.letter} did not start within {timeout}s"
                ) from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


def _raise_if_dead(node: Node) -> None:
    if node.task is not None and node.task.done():
        exc = node.task.exception()
        raise DemoFailed(f"gateway {node.unit.letter} stopped: {exc!r}")


async def _stop_all(demo: Demo) -> None:
    nodes = list(demo.nodes.values())
    for node in nodes:
        node.stop.set()
    tasks = [n.task for n in nodes if n.task is not None]
    for node, outcome in zip(
        [n for n in nodes if n.task is not None],
        await asyncio.gather(*tasks, return_exceptions=True),
        strict=True,
    ):
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            demo.narrator.line(f"gateway {node.unit.letter} ended with {outcome!r}")
    for node in nodes:
        if node.gateway is not None:
            await node.gateway.close()


def _quiet_cancelled_jobs() -> None:
    """A scheduled job still running when a gateway stops is cancelled by APScheduler, which then
    logs the cancellation as an error with a traceback. It is the stop we asked for: drop it."""

    def keep(record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)

    for name in ("apscheduler.executors.default", "apscheduler.scheduler"):
        logging.getLogger(name).addFilter(keep)


def _utf8_output() -> None:
    # Unit names are Vietnamese; a terminal that cannot show them gets escapes, not a crash.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and (stream.encoding or "").lower() not in (
            "utf-8",
            "utf8",
        ):
            stream.reconfigure(errors="backslashreplace")


# ------------------------------------------------------------------------------- the documents


def _today() -> dt.date:
    return dt.datetime.now(VIETNAM).date()


def _request(
    sender: DemoUnit,
    to: DemoUnit,
    *,
    number: str,
    notation: str,
    subject: str,
    content: str,
    classification: str = "thuong",
    response_for: list[dict[str, Any]] | None = None,
) -> DocumentRequest:
    """Metadata as a document-management system would post it (docs/reference/metadata.md)."""
    today = _today()
    return parse_metadata(
        {
            "from": {"organ_id": sender.code, "organ_name": sender.name},
            "to": [{"organ_id": to.code, "organ_name": to.name}],
            "code": {"number": number, "notation": notation},
            "promulgation": {"place": "Hà Nội", "date": today.isoformat()},
            "document_type": {"type": 1, "type_name": "Công văn"},
            "subject": subject,
            "content": content,
            "signer": {
                "competence": "KT. CHÁNH VĂN PHÒNG",
                "position": "Phó Chánh Văn phòng",
                "full_name": "Nguyễn Văn An",
            },
            "other_info": {"priority": 0, "page_amount": 1, "promulgation_amount": 1},
            "steering_type": 0,
            "response_for": response_for or [],
            "business": {
                "doc_type": 0,
                "paper": 0,
                "staff_info": {"department": "Văn thư", "staff": "Trần Thị Bình"},
            },
            "classification": classification,
        },
        today=today,
    )


def _attachment(title: str) -> AttachmentSource:
    text = f"{title}\n\nNội dung văn bản mẫu do docgw demo tạo ra.\n".encode()
    return AttachmentSource(name="van-ban.txt", open=lambda: io.BytesIO(text))


async def _submit(demo: Demo, node: Node, request: DocumentRequest, what: str) -> submit.Submitted:
    header = request.header
    submitted = await submit.submit_document(
        node.gw,
        request,
        [_attachment(header.subject)],
        client="demo",
        actor=f"demo ({node.unit.letter}'s document system)",
    )
    demo.narrator.say(
        node.unit.letter,
        f"{what} {header.document_id} «{header.subject}» accepted: built, signed with "
        f"{node.unit.code}'s key, stored (message {submitted.message_id[:8]}…)",
    )
    for route in submitted.routes:
        where = f"via channel {route.channel}" if route.channel else "HELD"
        demo.narrator.say(
            node.unit.letter, f"  route to {route.recipient}: {where} — {route.reason}"
        )
    return submitted


# ----------------------------------------------------------------------------------- watching


async def _until(
    demo: Demo, what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = STEP_TIMEOUT
) -> T:
    """Poll ``probe`` until it returns something; a gateway that died or a step that takes too
    long ends the demo with the step's name."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for node in demo.nodes.values():
            _raise_if_dead(node)
        value = await probe()
        if value is not None:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise DemoFailed(f"no progress within {timeout:.0f}s while waiting for {what}")
        await asyncio.sleep(0.1)


async def _recipient(node: Node, message_id: str) -> RecipientRecord:
    async with node.gw.engine.connect() as conn:
        [recipient] = await message_queries.get_recipients(conn, message_id)
    return recipient


def _sent(node: Node, message_id: str) -> Callable[[], Awaitable[RecipientRecord | None]]:
    async def probe() -> RecipientRecord | None:
        recipient = await _recipient(node, message_id)
        if recipient.state in (TransportState.FAILED, TransportState.HELD):
            raise DemoFailed(
                f"{recipient.unit_code}: {recipient.state.value}: {recipient.last_error}"
            )
        return recipient if recipient.state is TransportState.SENT else None

    return probe


def _business(
    node: Node, message_id: str, codes: tuple[str, ...]
) -> Callable[[], Awaitable[RecipientRecord | None]]:
    async def probe() -> RecipientRecord | None:
        recipient = await _recipient(node, message_id)
        return recipient if recipient.business_status in codes else None

    return probe


def _received(
    node: Node, document_id: str, sender: str
) -> Callable[[], Awaitable[MessageRecord | None]]:
    async def probe() -> MessageRecord | None:
        async with node.gw.engine.connect() as conn:
            message_id = await status_queries.find_received_document(
                conn, document_id=document_id, sender=sender
            )
            return await message_queries.get_message(conn, message_id) if message_id else None

    return probe


def _axis_bodies_mentioning(demo: Demo, text: str) -> int:
    needle = text.encode()
    return sum(1 for body in demo.axis.received_bodies if needle in body)


def _axis_receive_status(demo: Demo, sender_doc_id: str | None) -> str | None:
    sent = demo.axis.sent.get(sender_doc_id or "")
    if sent is None or not sent.receiver_doc_ids:
        return None
    return demo.axis.items[sent.receiver_doc_ids[0]].status


# ---------------------------------------------------------------------------------- the story


async def _unclassified(demo: Demo) -> None:
    narrator = demo.narrator
    a, b = demo.nodes["A"], demo.nodes["B"]
    narrator.step("1. A → B: an unclassified công văn over the national axis (VXP simulator)")
    request = _request(
        A, B, number=demo.stamp, notation="VPCP-TTĐT",
        subject="V/v kết nối liên thông văn bản điện tử",
        content="Đề nghị UBND tỉnh Nghệ An hoàn thành kết nối trục liên thông văn bản.",
    )  # fmt: skip
    document_id = request.header.document_id
    submitted = await _submit(demo, a, request, "document")
    sent = await _until(demo, "A's copy for B to be sent", _sent(a, submitted.message_id))
    narrator.say(
        "A", f"transport: sent — the axis accepted the package (axis DocId {sent.remote_id})"
    )
    received = await _until(demo, "B to receive A's document", _received(b, document_id, A.code))
    narrator.say(
        "B",
        f"polled the axis, fetched it, verified the signature against A's registered certificate "
        f"({received.signer_subject}), stored it (message {received.id[:8]}…), acknowledged it "
        "to the axis and queued status 01 back to A by itself",
    )
    await _until(demo, "status 01 at A", _business(a, submitted.message_id, ("01", "03")))
    narrator.say("A", "business status 01 (arrived) from B")
    await statuses.reply(
        b.gw,
        received.id,
        code=StatusCode.ACCEPTED,
        description="Đã vào sổ văn bản đến",
        staff=StaffInfo(department="Văn thư", staff="Lê Thị Hoa"),
        actor="demo (B's document system)",
    )
    narrator.say("B", "the registry clerk enters it in the incoming book: status 03 sent to A")
    await _until(demo, "status 03 at A", _business(a, submitted.message_id, ("03",)))
    narrator.say("A", "business status 03 (accepted and registered) from B")
    state = _axis_receive_status(demo, sent.remote_id)
    narrator.say("axis", f"its own view of B's copy (transport layer, not business): {state}")
    demo.results.append(
        f"A → B  {document_id}  unclassified  sent via axis, business status 03 "
        "(accepted and registered)"
    )

    narrator.step("2. B → A: B's reply to that document (ResponseFor), over the axis")
    reply = _request(
        B, A, number=demo.stamp, notation="UBND-VX",
        subject="V/v báo cáo kết quả kết nối liên thông văn bản",
        content="UBND tỉnh Nghệ An báo cáo đã hoàn thành kết nối theo đề nghị.",
        response_for=[{"organ_id": A.code, "code": f"{demo.stamp}/VPCP-TTĐT",
                       "promulgation_date": _today().isoformat(), "document_id": document_id}],
    )  # fmt: skip
    reply_id = reply.header.document_id
    narrator.say("B", f"answering {document_id}")
    answer = await _submit(demo, b, reply, "reply")
    sent = await _until(demo, "B's reply to be sent", _sent(b, answer.message_id))
    narrator.say("B", f"transport: sent (axis DocId {sent.remote_id})")
    got = await _until(demo, "A to receive B's reply", _received(a, reply_id, B.code))
    narrator.say("A", f"received and verified B's reply (message {got.id[:8]}…); 01 queued back")
    await _until(demo, "status 01 at B", _business(b, answer.message_id, ("01",)))
    narrator.say("B", "business status 01 (arrived) from A")
    demo.results.append(
        f"B → A  {reply_id}  reply to {document_id}  sent via axis, business status 01 (arrived)"
    )


async def _classified_secure(demo: Demo) -> None:
    narrator = demo.narrator
    c, d = demo.nodes["C"], demo.nodes["D"]
    narrator.step("3. C → D: a classified (mat) document over the secure channel (mutual TLS)")
    request = _request(
        C, D, number=demo.stamp, notation="VP-M", classification="mat",
        subject="V/v phương án bảo đảm an toàn thông tin",
        content="Tài liệu mật: chỉ gửi qua mạng truyền số liệu chuyên dùng.",
    )  # fmt: skip
    document_id = request.header.document_id
    submitted = await _submit(demo, c, request, "mat document")
    await _check_sealed(demo, c, submitted.message_id)
    sent = await _until(demo, "C's copy for D to be sent", _sent(c, submitted.message_id))
    narrator.say(
        "C",
        f"transport: sent — pushed to D's secure inbox {d.inbox_url} over mutual TLS "
        f"(D's receipt {str(sent.remote_id)[:8]}…)",
    )
    got = await _until(demo, "D to receive C's document", _received(d, document_id, C.code))
    narrator.say(
        "D",
        f"accepted the TLS client as {C.code} (its certificate), opened the seal with D's key, "
        f"verified C's signature ({got.signer_subject}), stored it; 01 goes back over the "
        "secure channel",
    )
    await _until(demo, "status 01 at C", _business(c, submitted.message_id, ("01",)))
    narrator.say("C", "business status 01 (arrived) from D")
    seen = _axis_bodies_mentioning(demo, document_id)
    narrator.say("axis", f"request bodies mentioning {document_id}: {seen}")
    if seen:
        raise DemoFailed("a classified document reached the axis")
    demo.results.append(
        f"C → D  {document_id}  mat  delivered over the secure channel, business status 01 "
        "(arrived)"
    )


async def _check_sealed(demo: Demo, node: Node, message_id: str) -> None:
    """Show, by reading the store, that a classified package is kept only sealed."""
    async with node.gw.engine.connect() as conn:
        message = await message_queries.get_message(conn, message_id)
        assert message is not None
        shas = [message.package_sha256, *(r.package_sha256 for r in message.recipients)]
        heads = [(await blobs.read_bytes(conn, sha))[: sealing.SNIFF_LENGTH] for sha in shas if sha]
    if not all(sealing.is_sealed(head) for head in heads):
        raise DemoFailed("a classified package was stored unsealed")
    demo.narrator.say(
        node.unit.letter,
        f"its database holds {len(heads)} copies, all sealed (one for {node.unit.code}, one for "
        "the recipient's certificate): no plaintext at rest",
    )


async def _classified_held(demo: Demo) -> None:
    narrator = demo.narrator
    a = demo.nodes["A"]
    narrator.step("4. A → B: a classified (mat) document, but B has no secure endpoint")
    request = _request(
        A, B, number=demo.stamp, notation="VPCP-M", classification="mat",
        subject="V/v kế hoạch kiểm tra công tác bảo vệ bí mật nhà nước",
        content="Tài liệu mật.",
    )  # fmt: skip
    document_id = request.header.document_id
    submitted = await _submit(demo, a, request, "mat document")
    # Give A's workers (which wake at once on new work) time to prove they leave it alone.
    await asyncio.sleep(1.5)
    recipient = await _recipient(a, submitted.message_id)
    if recipient.state is not TransportState.HELD:
        raise DemoFailed(f"the classified document is {recipient.state.value}, not held")
    narrator.say(
        "A", f"transport state stays {recipient.state.value}: never downgraded to the axis"
    )
    seen = _axis_bodies_mentioning(demo, document_id)
    narrator.say(
        "axis",
        f"request bodies mentioning {document_id}: {seen} (of {len(demo.axis.received_bodies)})",
    )
    if seen:
        raise DemoFailed("a classified document reached the axis")
    narrator.say(
        "A",
        "an operator can register a secure endpoint for B and re-route it "
        "(POST /api/v1/messages/{id}/reroute), or cancel it with a reason",
    )
    demo.results.append(f"A → B  {document_id}  mat  held: {submitted.routes[0].reason}")


# ---------------------------------------------------------------------------------- the end


def _summary(demo: Demo) -> None:
    demo.narrator.step("Summary")
    for result in demo.results:
        demo.narrator.line(f"  {result}")


def _docgw_command() -> str:
    beside = Path(sys.executable).parent / "docgw"
    return shlex.quote(str(beside)) if beside.exists() else "docgw"


def _where_to_look(demo: Demo, *, once: bool, temporary: bool) -> None:
    narrator = demo.narrator
    narrator.step("Where to look" + (" (while the demo runs)" if not once else ""))
    narrator.line(f"  axis simulator: {demo.axis_url}/_sim/state")
    docgw = _docgw_command()
    for node in demo.nodes.values():
        unit = node.unit
        narrator.line(f"  {unit.letter}  {unit.code} {unit.name}")
        narrator.line(f"     API {node.api_url}   admin token {node.token}")
        name, password = node.console_login
        narrator.line(f"     console {node.api_url}/console/   login {name} / {password}")
        if node.inbox_url:
            narrator.line(f"     secure inbox {node.inbox_url} (mutual TLS, no token)")
        narrator.line(
            f'     curl -s -H "Authorization: Bearer {node.token}" {node.api_url}/api/v1/messages'
        )
        narrator.line(f"     {docgw} --config {shlex.quote(str(node.config))} queue list")
    if temporary:
        narrator.line(
            f"  The folder {demo.home} is removed when the demo stops; --dir DIR keeps it."
        )
    if not once:
        narrator.line()
        narrator.line("Running. Press Ctrl-C to stop.")
