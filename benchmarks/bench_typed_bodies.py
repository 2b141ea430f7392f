"""What typed request bodies cost on the submit path: pydantic v2 against msgspec, against what
docgw does without either (``json.loads`` and hand-written checks), in interleaved rounds. Run by
hand (msgspec is not a dependency of docgw; install it into the venv for this comparison)::

    .venv/bin/pip install msgspec
    PYTHONPATH=. .venv/bin/python benchmarks/bench_typed_bodies.py [--rounds 7] [--calls 20000]

Bodies measured, each from bytes to a checked value:

- ``metadata, opaque``: the submission's metadata part as the API's request model takes it (a
  JSON object, the fields left to ``envelopes.metadata``);
- ``metadata, typed``: the same part validated field by field (nested models of every key of
  docs/reference/metadata.md), as a typed metadata definition would;
- ``status reply``: ``POST …/status``'s body (code, description, staff_info).

Then, for scale, ``envelopes.metadata.parse_metadata`` on the same bytes (it runs on every
submission whatever the choice), and the share of a submission's CPU the typed metadata costs
(3.1 ms per submission: docs/performance.md, "Outbox").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, StrictStr, TypeAdapter

from envelopes.metadata import parse_metadata

try:
    import msgspec
except ImportError:  # pragma: no cover - an optional comparison
    msgspec = None  # type: ignore[assignment]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SUBMIT_CPU_MS = 3.1


# --------------------------------------------------------------------------- pydantic models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class POrg(_Strict):
    organ_id: str
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


class PCode(_Strict):
    number: str
    notation: str


class PPromulgation(_Strict):
    place: str | None = None
    date: str


class PDocType(_Strict):
    type: int
    type_name: str | None = None


class PSigner(_Strict):
    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


class POther(_Strict):
    priority: int | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    page_amount: int | None = None
    appendixes: list[str] | None = None


class PStaff(_Strict):
    department: str | None = None
    staff: str | None = None
    mobile: str | None = None
    email: str | None = None


class PBusiness(_Strict):
    doc_type: int
    reason: str | None = None
    paper: int | None = None
    staff_info: PStaff | None = None


class PMetadata(_Strict):
    from_: POrg = pydantic.Field(alias="from")
    to: list[POrg]
    code: PCode
    promulgation: PPromulgation
    document_type: PDocType
    subject: str
    content: str | None = None
    signer: PSigner | None = None
    due_date: str | None = None
    to_places: list[str] | None = None
    other_info: POther | None = None
    steering_type: int | None = None
    response_for: list[dict[str, Any]] | None = None
    document_id: str | None = None
    business: PBusiness | None = None
    classification: str


class PStatusReply(_Strict):
    code: Literal["02", "03", "04", "05", "06", "13", "15", "16"]
    description: StrictStr | None = None
    staff_info: PStaff | None = None


OPAQUE = TypeAdapter(dict[str, Any])


# ---------------------------------------------------------------------------- msgspec structs

if msgspec is not None:

    class MOrg(msgspec.Struct, forbid_unknown_fields=True):
        organ_id: str
        organization_in_charge: str | None = None
        organ_name: str | None = None
        organ_add: str | None = None
        email: str | None = None
        telephone: str | None = None
        fax: str | None = None
        website: str | None = None

    class MCode(msgspec.Struct, forbid_unknown_fields=True):
        number: str
        notation: str

    class MPromulgation(msgspec.Struct, forbid_unknown_fields=True):
        date: str
        place: str | None = None

    class MDocType(msgspec.Struct, forbid_unknown_fields=True):
        type: int
        type_name: str | None = None

    class MSigner(msgspec.Struct, forbid_unknown_fields=True):
        competence: str | None = None
        position: str | None = None
        full_name: str | None = None

    class MOther(msgspec.Struct, forbid_unknown_fields=True):
        priority: int | None = None
        sphere_of_promulgation: str | None = None
        typer_notation: str | None = None
        promulgation_amount: int | None = None
        page_amount: int | None = None
        appendixes: list[str] | None = None

    class MStaff(msgspec.Struct, forbid_unknown_fields=True):
        department: str | None = None
        staff: str | None = None
        mobile: str | None = None
        email: str | None = None

    class MBusiness(msgspec.Struct, forbid_unknown_fields=True):
        doc_type: int
        reason: str | None = None
        paper: int | None = None
        staff_info: MStaff | None = None

    class MMetadata(msgspec.Struct, forbid_unknown_fields=True, rename={"from_": "from"}):
        from_: MOrg
        to: list[MOrg]
        code: MCode
        promulgation: MPromulgation
        document_type: MDocType
        subject: str
        classification: str
        content: str | None = None
        signer: MSigner | None = None
        due_date: str | None = None
        to_places: list[str] | None = None
        other_info: MOther | None = None
        steering_type: int | None = None
        response_for: list[dict[str, Any]] | None = None
        document_id: str | None = None
        business: MBusiness | None = None

    class MStatusReply(msgspec.Struct, forbid_unknown_fields=True):
        code: Literal["02", "03", "04", "05", "06", "13", "15", "16"]
        description: str | None = None
        staff_info: MStaff | None = None


# ------------------------------------------------------------------------------ hand-written


def hand_status_reply(raw: bytes) -> dict[str, Any]:
    """docgw's checks before pydantic (gateway/web/bodies.py at the split), in short."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    for key in value:
        if key not in ("code", "description", "staff_info"):
            raise ValueError(key)
    if value.get("code") not in ("02", "03", "04", "05", "06", "13", "15", "16"):
        raise ValueError("code")
    if not isinstance(value.get("description"), str | None):
        raise ValueError("description")
    staff = value.get("staff_info")
    if staff is not None:
        if not isinstance(staff, dict):
            raise ValueError("staff_info")
        for key, item in staff.items():
            if key not in ("department", "staff", "mobile", "email") or not isinstance(item, str):
                raise ValueError(key)
    return value


def per_call_us(function: Callable[[], object], calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        function()
    return (time.perf_counter_ns() - started) / calls / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()

    metadata = (EXAMPLES / "new-document.json").read_bytes()
    reply = json.dumps(
        {"code": "02", "description": "Đã nhận, chuyển phòng Tổng hợp xử lý.",
         "staff_info": {"department": "Văn thư", "staff": "Trần Thị B", "mobile": "0912000001"}},
        ensure_ascii=False,
    ).encode()  # fmt: skip
    today = dt.date(2026, 11, 30)
    assert PMetadata.model_validate_json(metadata).code.number == "7816"
    contenders: dict[str, dict[str, Callable[[], object]]] = {
        "metadata, opaque": {
            "json.loads": lambda: json.loads(metadata),
            "pydantic": lambda: OPAQUE.validate_json(metadata),
        },
        "metadata, typed": {
            "pydantic": lambda: PMetadata.model_validate_json(metadata),
        },
        "status reply": {
            "hand-written": lambda: hand_status_reply(reply),
            "pydantic": lambda: PStatusReply.model_validate_json(reply),
        },
        "for scale": {
            "parse_metadata": lambda: parse_metadata(metadata, today=today),
        },
    }
    if msgspec is not None:
        decode_opaque = msgspec.json.Decoder(dict[str, Any])
        decode_typed = msgspec.json.Decoder(MMetadata)
        decode_reply = msgspec.json.Decoder(MStatusReply)
        assert decode_typed.decode(metadata).code.number == "7816"
        contenders["metadata, opaque"]["msgspec"] = lambda: decode_opaque.decode(metadata)
        contenders["metadata, typed"]["msgspec"] = lambda: decode_typed.decode(metadata)
        contenders["status reply"]["msgspec"] = lambda: decode_reply.decode(reply)

    print(f"pydantic {pydantic.VERSION}, msgspec {getattr(msgspec, '__version__', 'absent')}")
    print(f"metadata {len(metadata)} bytes, status reply {len(reply)} bytes")
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):  # interleaved: every contender once per round
        for body, by_name in contenders.items():
            for name, function in by_name.items():
                results.setdefault((body, name), []).append(per_call_us(function, args.calls))
    print(f"load average {os.getloadavg()[0]:.2f} at the end\n")
    print(f"median µs per call over {args.rounds} interleaved rounds of {args.calls} calls")
    for body, by_name in contenders.items():
        first = statistics.median(results[(body, next(iter(by_name)))])
        for name in by_name:
            runs = results[(body, name)]
            median = statistics.median(runs)
            print(
                f"  {body:17} {name:15} {median:8.2f} µs  (range {min(runs):.2f}–{max(runs):.2f})"
                f"  ×{median / first:.2f}"
            )
    typed = statistics.median(results[("metadata, typed", "pydantic")])
    print(
        f"\npydantic, typed metadata: {typed / (SUBMIT_CPU_MS * 1000) * 100:.2f} % of a "
        f"submission's {SUBMIT_CPU_MS} ms of CPU"
    )
    if msgspec is not None:
        fast = statistics.median(results[("metadata, typed", "msgspec")])
        print(f"pydantic − msgspec, typed metadata: {typed - fast:.2f} µs per submission")


if __name__ == "__main__":
    main()
