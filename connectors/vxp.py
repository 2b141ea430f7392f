"""The national document interconnection axis (VXP / VDXP), as the official SDK speaks to it.

Every operation is ``POST {endpoint}/{operation}``; parameters travel as signed ``XroadVnpt-*``
headers (:mod:`connectors.vxp_signing`); answers are JSON ``{status: OK|FAIL, ErrorCode, ErrorDesc,
…}`` with ErrorCode ``"0"`` on success (DOMAIN.md §5).

=======================  ========================================  ==============================
method                   operation                                 returns
=======================  ========================================  ==============================
``deliver``              sendEdoc (raw package, octet-stream)      Receipt(remote_id=DocId)
``pending(kind)``        getReceivedEdocList (messagetype)          list[RemoteItem]
``fetch(item)``          getEdoc(docId) → base64 ``data``           bytes
``acknowledge``          updateStatus(docId, status=done|fail)      None
``sent_states``          getSentEdocList(docId)                     list[RecipientState]
``agencies``             getAgenciesList                            list[DirectoryEntry]
``agencies_qd20``        getAgenciesListQD20                        list[DirectoryEntry]
``synchronize_units``    getSynchronizeUnit(fromDate)               list[UnitChange]
``register_agency``      registerAgency (JSON body)                 None
``delete_agency``        deleteAgency(AgencyCode)                   None
=======================  ========================================  ==============================

How failures are translated (all at this boundary, with ``raise … from``)::

    ClassifiedRefused   a classified delivery: refused before a byte of the package is read
    VxpRefused          (PeerRefused) FAIL with a business ErrorCode — final:
                        10 invalid file, 15 bad credentials, 18 unknown receiver,
                        19 sender not registered, 22 package not compliant, 23 receiver locked;
                        any other 4xx
    PeerUnavailable     ErrorCode 20 (system error) or an unknown ErrorCode, HTTP 5xx / 408 /
                        425 / 429, connection refused or reset before the request was sent,
                        and any failure of a read-only call
    OutcomeUnknown      sendEdoc (or another call that changes the axis) timed out or was cut
                        off after the request started going out: the axis may have committed it

The error codes are *probable* (from a provincial clone of the axis); both sets are fields, so a
deployment can move a code without a code change. An unknown ErrorCode counts as unavailable: the
outbox's bounded, durable retries then decide (retrying is cheaper than losing a document to a
code we misread).

The refusals and system errors carry the axis' code at the start of their message, ``axis code
15: …`` (and as ``VxpRefused.axis_code``): the docgw code stays ``PEER_REFUSED`` /
``PEER_UNAVAILABLE`` for the outbox, and the attempt's detail says which refusal it was.

Retries inside one call (tenacity)
----------------------------------
A call makes up to ``attempts`` requests (4), with full-jitter exponential pauses between them
(``retry_wait`` 0.2 s doubling, at most ``retry_wait_max`` 2 s), and all of it, pauses included,
within the call's ``timeout``: each request gets what is left of that budget, and no further
attempt starts once less than a tenth of it (at most 1 s) would be left after the pause.
Retried: transport failures — connection refused or reset, connect timeouts, the server
disconnecting, a broken answer body, no answer in time — and HTTP 5xx / 408 / 425 / 429. Never
retried: an answer with an ErrorCode (business codes are final; 20, the axis' own system error,
is left to the outbox like an unknown code) and any other 4xx. The durable retry across calls
(backoff over minutes and hours, persisted) belongs to the outbox (gateway.domain.retry).

A timeout waiting for the answer is a transport failure like the others, but the budget bounds
it: by default a request may use everything that is left (``attempt_timeout=None``), so that a
large package's upload is never cut short to make room for a retry; a timed-out request then
leaves nothing to retry with, and the outbox resends later. ``attempt_timeout`` caps each request
instead (a hung answer is abandoned and retried within the budget).

Resending inside a call is safe for what the receivers deduplicate. A sendEdoc that may have
been committed (the body started going out, then no answer) is sent again: the axis then queues
the package twice and the receiving gateway keeps it once, on (sender, DocumentId) for documents
and (sender, DocumentId, status code, timestamp) for statuses — ``gateway.usecases.intake``'s
``_dedup_key`` and the unique ``messages (direction, dedup_key)`` — exactly as when the outbox
resends after an OutcomeUnknown. updateStatus sets a state (the same twice is the same) and the
read-only calls change nothing. registerAgency and deleteAgency are not idempotent at the axis
(the second would answer "already registered" / "unknown agency"): they are retried only when
nothing can have been sent (connection refused, connect timeout) or the axis answered 5xx.
If any request of a sendEdoc call may have been committed and none succeeded, the call ends in
OutcomeUnknown, whatever the last request's failure was — a refusal or the axis' code 20 included:
the axis may hold the package from the earlier request all the same.

What the official SDK sends, docgw sends by default (DOMAIN.md §5: what the real axis is known
to accept); each other form is a field, for a platform that wants it:

* ``XroadVnpt-timestamp`` as ``ddMMyyyy'T'HHmmss+SSSS`` in Vietnam time, stamped afresh for every
  request (``timestamp_format``; ``EPOCH_MILLIS`` the alternative);
* ``hash-file`` in the SDK's per-byte form, leading zeros dropped (``hash_form``; ``CANONICAL``,
  64 hex digits, the alternative);
* ``XroadVnpt-version: 3.0.201608`` on every request, unsigned (:func:`sign_headers`);
* deleteAgency names the unit ``AgencyCode`` (``delete_agency_param``; ``code`` the alternative).

The package goes out as it is: the SDK writes CRLF after it on sendEdoc, but its ``hash-file``
covers the package alone, and nothing says the axis needs the CRLF (its simulator takes both).

Probable details beyond DOMAIN.md, each a field or a documented choice:

* ``to``: sent for status packages only, as compact JSON array text (the SDK sends the JSON text of
  its ``to`` value); a status package has no To element, and a retraction request (13) goes from
  the document's sender to its receivers, so the package alone cannot route it. Documents are
  routed by their MessageHeader/To.
* ``updateStatus`` with ``fail`` carries the reason as ``description``, percent-encoded UTF-8
  (headers cannot carry Vietnamese text safely).
* ``getSynchronizeUnit`` takes ``fromDate`` in the request's timestamp format.
* ``getAgenciesList``'s ``pid`` is the parent's ``id`` (resolved through the same list); a ``pid``
  that is no id but a unit code, or an explicit ``pcode``, is taken as the parent's code.
"""

from __future__ import annotations

import asyncio
import binascii
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote

import aiohttp
import pybase64
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from connectors.base import (
    ClassifiedRefused,
    ConnectorError,
    Delivery,
    DirectoryEntry,
    OutcomeUnknown,
    PeerRefused,
    PeerUnavailable,
    Receipt,
    RecipientState,
    RemoteItem,
    UnitChange,
)
from connectors.offload import run_blocking
from connectors.vxp_signing import (
    HashFileForm,
    TimestampFormat,
    format_timestamp,
    hash_file,
    render_hash,
    sign_headers,
)
from envelopes.unit_codes import parse_strict

CHUNK = 1 << 20
JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
SERVICE_TYPE = "eDoc"
#: Delivery.kind / RemoteItem.kind → the axis' messagetype.
MESSAGE_TYPES = {"document": "edoc", "status": "status"}
#: Probable business error codes (final) and system error codes (retried).
REFUSED_CODES = frozenset({"10", "15", "18", "19", "22", "23"})
UNAVAILABLE_CODES = frozenset({"20"})
RETRYABLE_HTTP = frozenset({408, 425, 429})
#: How deleteAgency may name the unit: the SDK's ``AgencyCode`` (the default), or ``code``.
DELETE_AGENCY_PARAMS = ("AgencyCode", "code")
#: Retries inside one call (see the module's "Retries inside one call").
ATTEMPTS = 4
RETRY_WAIT = 0.2
RETRY_WAIT_MAX = 2.0
CONNECT_TIMEOUT = 10.0

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
#: What a base64 answer may carry between its characters (line breaks from some producers).
_WHITESPACE = b" \t\r\n\x0b\x0c"


class VxpRefused(PeerRefused):
    """The axis refused the call for good; ``axis_code`` is its ErrorCode (or None for a bare
    HTTP 4xx). The code stays ``PEER_REFUSED``: callers handle every final refusal alike."""

    def __init__(self, message: str, *, axis_code: str | None = None) -> None:
        super().__init__(message)
        self.axis_code = axis_code


@dataclass
class _Progress:
    """Did the request start going out? Set when the first byte of the body is handed over."""

    started: bool = False


class _Retry(Exception):
    """One request failed in a way the next may not: ``error`` is what the call raises if no
    attempt is left; ``maybe_committed``: the axis may have acted on this request."""

    def __init__(self, error: ConnectorError, *, maybe_committed: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.maybe_committed = maybe_committed


class _Budget(stop_base):
    """tenacity's stop: no attempt after ``attempts``, nor one that would start with less than
    ``floor`` seconds of the call's budget left once the pause before it is over."""

    def __init__(self, deadline: float, floor: float) -> None:
        super().__init__()
        self.deadline = deadline
        self.floor = floor

    def __call__(self, retry_state: RetryCallState) -> bool:
        pause = getattr(retry_state, "upcoming_sleep", 0.0) or 0.0
        return self.deadline - _monotonic() - pause < self.floor


def _monotonic() -> float:
    return asyncio.get_running_loop().time()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _stream(
    open_package: Callable[[], IO[bytes]], progress: _Progress, size: int | None
) -> AsyncIterator[bytes]:
    # Opened here, not before the request: nothing is read until a connection exists.
    stream = await run_blocking(size, open_package)
    try:
        while chunk := await run_blocking(size, stream.read, CHUNK):
            progress.started = True
            yield chunk
    finally:
        stream.close()


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass
class VxpConnector:
    name: str
    endpoint: str
    system_id: str
    secret: bytes = field(repr=False)  # never in logs
    session: aiohttp.ClientSession
    #: Seconds for a whole call, the upload of the package included: size it for the largest.
    timeout: float = 60.0
    #: Always True: the VXP connector refuses classified packages whatever the configuration says.
    is_axis: bool = True
    #: The official SDK's forms by default (see the module docstring).
    timestamp_format: TimestampFormat = TimestampFormat.SDK
    hash_form: HashFileForm = HashFileForm.SDK
    delete_agency_param: str = DELETE_AGENCY_PARAMS[0]
    refused_codes: frozenset[str] = REFUSED_CODES
    unavailable_codes: frozenset[str] = UNAVAILABLE_CODES
    #: Requests per call at most, and the jittered exponential pause between them (seconds).
    attempts: int = ATTEMPTS
    retry_wait: float = RETRY_WAIT
    retry_wait_max: float = RETRY_WAIT_MAX
    #: Seconds one request may take (None: all that is left of ``timeout``); connecting: at most.
    attempt_timeout: float | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    clock: Callable[[], dt.datetime] = field(default=_utcnow, repr=False)

    def __post_init__(self) -> None:
        if not self.is_axis:
            raise ValueError("the VXP connector is an axis connector: is_axis cannot be False")
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.delete_agency_param not in DELETE_AGENCY_PARAMS:
            raise ValueError(f"delete_agency_param must be one of {DELETE_AGENCY_PARAMS}")
        self.endpoint = self.endpoint.rstrip("/")

    # ------------------------------------------------------------------------------- sending

    async def deliver(self, delivery: Delivery) -> Receipt:
        # First, before the package is opened: classified content never goes near the axis.
        if delivery.classification.is_classified:
            raise ClassifiedRefused(
                f"{self.name} is the national axis: a {delivery.classification.value} package "
                "never goes there"
            )
        message_type = MESSAGE_TYPES.get(delivery.kind)
        if message_type is None:
            raise ValueError(f"unknown delivery kind {delivery.kind!r}")
        digest = delivery.package_sha256.lower()
        if not _SHA256_HEX.fullmatch(digest):
            digest = await run_blocking(delivery.package_size, self._digest, delivery.open_package)
        params = {
            "servicetype": SERVICE_TYPE,
            "messagetype": message_type,
            "from": delivery.sender,
            "hash-file": render_hash(digest, self.hash_form),
        }
        if delivery.kind == "status":
            params["to"] = json.dumps(list(delivery.recipients), separators=(",", ":"))
        progress = _Progress()
        payload = await self._post(
            "sendEdoc",
            params,
            content_type=OCTET_STREAM,
            body=lambda: _stream(delivery.open_package, progress, delivery.package_size),
            content_length=delivery.package_size,
            progress=progress,
            commits=True,
            resend_safe=True,  # receivers deduplicate (see the module's "Retries inside one call")
        )
        return Receipt(remote_id=_text(payload.get("DocId")))

    @staticmethod
    def _digest(open_package: Callable[[], IO[bytes]]) -> str:
        with open_package() as stream:
            return hash_file(stream)

    # ------------------------------------------------------------------------------ receiving

    async def pending(self, kind: str) -> list[RemoteItem]:
        message_type = MESSAGE_TYPES.get(kind)
        if message_type is None:
            raise ValueError(f"unknown kind {kind!r}")
        payload = await self._post(
            "getReceivedEdocList", {"servicetype": SERVICE_TYPE, "messagetype": message_type}
        )
        items: dict[str, RemoteItem] = {}
        for entry in self._data(payload, "getReceivedEdocList"):
            doc_id = _text(entry.get("docId") or entry.get("DocId"))
            # The same docId listed twice is one item; two docIds for one package are two items
            # (intake deduplicates those on sender and DocumentId).
            if doc_id is None or doc_id in items:
                continue
            items[doc_id] = RemoteItem(
                remote_id=doc_id,
                kind=kind,
                sender=_text(entry.get("from")),
                created_at=_text(entry.get("created_time")),
            )
        return list(items.values())

    async def fetch(self, item: RemoteItem) -> bytes:
        payload = await self._post(
            "getEdoc", {"servicetype": SERVICE_TYPE, "docId": item.remote_id}
        )
        data = payload.get("data")
        if not isinstance(data, str) or not data:
            raise VxpRefused(f"{self.name}: getEdoc {item.remote_id}: no data in the answer")
        try:
            return await run_blocking(len(data), _b64decode, data)
        except (binascii.Error, ValueError) as exc:
            raise VxpRefused(
                f"{self.name}: getEdoc {item.remote_id}: data is not base64: {exc}"
            ) from exc

    async def acknowledge(self, item: RemoteItem, *, ok: bool, reason: str = "") -> None:
        params = {
            "servicetype": SERVICE_TYPE,
            "docId": item.remote_id,
            "status": "done" if ok else "fail",
        }
        if not ok and reason:
            params["description"] = quote(reason[:500], safe="")
        await self._post("updateStatus", params)

    async def sent_states(self, doc_id: str) -> list[RecipientState]:
        payload = await self._post(
            "getSentEdocList", {"servicetype": SERVICE_TYPE, "docId": doc_id}
        )
        states = []
        for entry in self._data(payload, "getSentEdocList"):
            recipient = _text(entry.get("toCode") or entry.get("to"))
            if recipient is None:
                continue
            states.append(
                RecipientState(
                    recipient=recipient,
                    send_status=_text(entry.get("sendStatus")),
                    receive_status=_text(entry.get("receiveStatus")),
                )
            )
        return states

    # ------------------------------------------------------------------------------ directory

    async def agencies(self) -> list[DirectoryEntry]:
        payload = await self._post("getAgenciesList", {})
        data = self._data(payload, "getAgenciesList")
        by_id = {str(e["id"]): str(e["code"]) for e in data if e.get("id") and e.get("code")}
        entries = []
        for entry in data:
            code = _text(entry.get("code"))
            if code is None:
                continue
            entries.append(
                DirectoryEntry(
                    code=code,
                    name=_text(entry.get("name")) or code,
                    parent_code=_parent(entry, by_id),
                    email=_text(entry.get("mail")),
                    old_code=_text(entry.get("oldCode")),
                )
            )
        return entries

    async def agencies_qd20(self) -> list[DirectoryEntry]:
        """The directory with both codes: ``code`` is the QCVN 102 code where the axis has one
        (``code102``), otherwise the QĐ 20 code; ``code_qd20`` is always the QĐ 20 code."""
        payload = await self._post("getAgenciesListQD20", {})
        data = self._data(payload, "getAgenciesListQD20")
        by_id = {
            str(e["id"]): str(e.get("code102") or e.get("code"))
            for e in data
            if e.get("id") and (e.get("code102") or e.get("code"))
        }
        entries = []
        for entry in data:
            qd20 = _text(entry.get("code"))
            code = _text(entry.get("code102")) or qd20
            if code is None:
                continue
            entries.append(
                DirectoryEntry(
                    code=code,
                    name=_text(entry.get("name")) or code,
                    parent_code=_parent(entry, by_id, explicit="pcode102"),
                    code_qd20=qd20,
                    email=_text(entry.get("mail")),
                    old_code=_text(entry.get("oldCode")),
                )
            )
        return entries

    async def synchronize_units(self, since: dt.datetime | None = None) -> list[UnitChange]:
        """Agencies changed since ``since`` (all when None). Deletions come back as
        ``deleted=True`` (probable: a ``deleted`` flag or a ``status`` of deleted/inactive/0)."""
        params = (
            {} if since is None else {"fromDate": format_timestamp(since, self.timestamp_format)}
        )
        payload = await self._post("getSynchronizeUnit", params)
        data = self._data(payload, "getSynchronizeUnit")
        by_id = {str(e["id"]): str(e["code"]) for e in data if e.get("id") and e.get("code")}
        changes = []
        for entry in data:
            code = _text(entry.get("code"))
            if code is None:
                continue
            status = str(entry.get("status", "")).strip().lower()
            changes.append(
                UnitChange(
                    entry=DirectoryEntry(
                        code=code,
                        name=_text(entry.get("name")) or code,
                        parent_code=_parent(entry, by_id),
                        code_qd20=_text(entry.get("codeQD20")),
                        email=_text(entry.get("mail")),
                        old_code=_text(entry.get("oldCode")),
                    ),
                    deleted=entry.get("deleted") is True or status in ("deleted", "inactive", "0"),
                    changed_at=_text(entry.get("updatedTime")),
                )
            )
        return changes

    async def register_agency(
        self,
        *,
        code: str,
        name: str,
        parent_code: str | None = None,
        mail: str | None = None,
        mobile: str | None = None,
        fax: str | None = None,
    ) -> None:
        """Register an agency with the axis. Codes are validated strictly first (DOMAIN.md §2):
        a UnitCodeError leaves docgw before any request is made."""
        parse_strict(code, field="code")
        if parent_code:
            parse_strict(parent_code, field="parent_code")
        body = json.dumps(
            {
                "pcode": parent_code or "",
                "code": code,
                "name": name,
                "mail": mail or "",
                "mobile": mobile or "",
                "fax": fax or "",
            },
            ensure_ascii=False,
        ).encode("utf-8")
        await self._post("registerAgency", {}, body=lambda: body, commits=True)

    async def delete_agency(self, code: str) -> None:
        await self._post("deleteAgency", {self.delete_agency_param: code}, commits=True)

    async def close(self) -> None:
        # The session belongs to whoever injected it.
        return None

    # ------------------------------------------------------------------------------ plumbing

    async def _post(
        self,
        operation: str,
        params: Mapping[str, str],
        *,
        content_type: str = JSON,
        body: Callable[[], Any] | None = None,
        content_length: int | None = None,
        progress: _Progress | None = None,
        commits: bool = False,
        resend_safe: bool = False,
    ) -> dict[str, Any]:
        """One signed call, in one or more requests (see the module's "Retries inside one
        call"). ``body`` makes a fresh payload per request; ``progress`` tells whether a streamed
        body started going out; ``commits`` marks calls that change the axis, whose interrupted
        requests are outcome-unknown rather than unavailable; ``resend_safe``: such a call may
        be sent again after a request that may have been committed (receivers deduplicate)."""
        deadline = _monotonic() + self.timeout
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retry),
            stop=stop_after_attempt(self.attempts)
            | _Budget(deadline, floor=min(1.0, self.timeout / 10)),
            wait=wait_random_exponential(multiplier=self.retry_wait, max=self.retry_wait_max),
            reraise=True,
        )
        maybe_committed = False
        try:
            async for attempt in retrying:
                with attempt:
                    if progress is not None:
                        progress.started = False
                    try:
                        return await self._request(
                            operation,
                            params,
                            content_type=content_type,
                            body=body,
                            content_length=content_length,
                            progress=progress,
                            commits=commits,
                            budget=deadline - _monotonic(),
                        )
                    except _Retry as retry:
                        maybe_committed |= retry.maybe_committed
                        if retry.maybe_committed and not resend_safe:
                            raise retry.error from retry.__cause__
                        raise
        except _Retry as retry:
            tries = attempt.retry_state.attempt_number
            raise _ending(retry.error, maybe_committed, tries) from retry.__cause__
        except ConnectorError as final:
            # A final answer (a refusal, code 20) after a request that may have been committed:
            # the axis may hold the package all the same, so the call cannot end refused.
            tries = attempt.retry_state.attempt_number
            ending = _ending(final, maybe_committed, tries)
            if ending is final:
                raise
            raise ending from final
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _request(
        self,
        operation: str,
        params: Mapping[str, str],
        *,
        content_type: str,
        body: Callable[[], Any] | None,
        content_length: int | None,
        progress: _Progress | None,
        commits: bool,
        budget: float,
    ) -> dict[str, Any]:
        """One request. Final outcomes raise a ConnectorError; what another request may cure
        raises :class:`_Retry` around the error the call would end with."""
        where = f"{self.name}: {operation}"
        total = max(0.001, min(budget, self.attempt_timeout or budget))
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=min(total, self.connect_timeout))
        headers = sign_headers(
            system_id=self.system_id,
            secret=self.secret,
            timestamp=self.clock(),
            params={"Content-Type": content_type, **params},
            timestamp_format=self.timestamp_format,
        )
        if content_length is not None:
            headers["Content-Length"] = str(content_length)
        try:
            async with self.session.post(
                f"{self.endpoint}/{operation}",
                data=body() if body is not None else None,
                headers=headers,
                timeout=timeout,
            ) as response:
                return await self._answer(operation, response, commits)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Connection refused / unreachable / not connected in time: nothing was sent.
            cause = "connect timeout" if isinstance(exc, TimeoutError) else str(exc)
            raise _Retry(PeerUnavailable(f"{where}: {cause}"), maybe_committed=False) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Reset, disconnected, a broken answer, no answer in time: the request went out.
            what = f"no answer within {total:.3g}s" if isinstance(exc, TimeoutError) else str(exc)
            maybe_sent = progress.started if progress is not None else True
            committed = commits and maybe_sent
            failed = (OutcomeUnknown if committed else PeerUnavailable)(f"{where}: {what}")
            raise _Retry(failed, maybe_committed=committed) from exc

    async def _answer(
        self, operation: str, response: aiohttp.ClientResponse, commits: bool
    ) -> dict[str, Any]:
        status = response.status
        text = await response.text(encoding="utf-8", errors="replace")
        where = f"{self.name}: {operation}"
        if status >= 500 or status in RETRYABLE_HTTP:
            # The axis (or a proxy before it) answered without taking the request on.
            unavailable = PeerUnavailable(f"{where}: HTTP {status}: {text[:300]}")
            raise _Retry(unavailable, maybe_committed=False)
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            if 200 <= status < 300:
                # A 2xx we cannot read: for sendEdoc the axis may well have taken the package.
                error = OutcomeUnknown if commits else PeerUnavailable
                raise error(f"{where}: HTTP {status} without a VXP answer: {text[:300]}")
            raise VxpRefused(f"{where}: HTTP {status}: {text[:300]}")
        verdict = str(payload.get("status", "")).strip().upper()
        code = str(payload.get("ErrorCode", "")).strip()
        description = str(payload.get("ErrorDesc", "") or "")[:300]
        if 200 <= status < 300 and verdict != "FAIL" and code in ("0", ""):
            return payload
        # "axis code N:" first: the detail an attempt records says which refusal it was.
        message = f"axis code {code or '?'}: {where}: {description} (HTTP {status})"
        if code in self.refused_codes:
            raise VxpRefused(message, axis_code=code)
        if code in self.unavailable_codes:
            raise PeerUnavailable(message)
        if 400 <= status < 500:
            raise VxpRefused(message, axis_code=code or None)
        raise PeerUnavailable(message)

    def _data(self, payload: Mapping[str, Any], operation: str) -> list[dict[str, Any]]:
        data = payload.get("data")
        if data is None:
            return []
        if not isinstance(data, list):
            raise PeerUnavailable(f"{self.name}: {operation}: data is not a list")
        return [entry for entry in data if isinstance(entry, dict)]


def _ending(error: ConnectorError, maybe_committed: bool, tries: int) -> ConnectorError:
    """What a call that failed raises: OutcomeUnknown once any of its requests may have been
    committed, whatever the last one's failure (a new error; ``error`` itself otherwise), with
    the number of requests when there were several."""
    if maybe_committed and not isinstance(error, OutcomeUnknown):
        error = OutcomeUnknown(
            f"{error.message}; an earlier request of this call may have been committed"
        )
    if tries > 1:
        error.message = f"{error.message} (after {tries} requests)"
        error.args = (error.message,)
    return error


def _b64decode(data: str) -> bytes:
    try:
        # The common case, one line: decoded from the str as it is, no copy first.
        return pybase64.b64decode(data, validate=True)
    except ValueError:
        # Line-wrapped: bytes.translate deletes the whitespace in one C pass, then strict again.
        raw = data.encode("ascii").translate(None, _WHITESPACE)
        return pybase64.b64decode(raw, validate=True)


def _parent(
    entry: Mapping[str, Any], by_id: Mapping[str, str], *, explicit: str = "pcode"
) -> str | None:
    parent = _text(entry.get(explicit))
    if parent is not None:
        return parent
    pid = _text(entry.get("pid"))
    if pid is None or pid in ("0", "-1"):
        return None
    # pid is the parent's id; a pid that is no id of this list but holds a dot is a code.
    return by_id.get(pid) or (pid if "." in pid else None)
