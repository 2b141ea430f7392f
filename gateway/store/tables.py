"""The database schema (SQLAlchemy Core). Alembic migrations must produce exactly this; a test
compares them on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa

from envelopes.model import Classification
from envelopes.reading import PackageKind
from gateway.domain.accounts import Language, Role
from gateway.domain.direction import Direction
from gateway.domain.directory import SyncMode
from gateway.domain.imports import ImportOutcome
from gateway.domain.lifecycle import TransportState
from gateway.domain.retry import Outcome

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timestamps are stored in UTC and come back timezone-aware on every database: SQLite keeps
    no offset, so a Vietnam-local value written as is would be read back seven hours off."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("docgw stores only timezone-aware datetimes")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


TS = UtcDateTime()


def one_of(column: str, values: type[StrEnum]) -> sa.CheckConstraint:
    """CHECK that ``column`` holds one of the enum's values (NULL passes: nullability is the
    column's own), named ``ck_<table>_<column>``. Migrations 0011 and 0019 wrote the same lists;
    a value added to an enum needs a migration that replaces the constraint."""
    allowed = ", ".join(f"'{value.value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=column)


units = sa.Table(
    "units",
    metadata,
    sa.Column("code", sa.String(35), primary_key=True),
    sa.Column("code_qd20", sa.String(35), nullable=True),
    sa.Column("name", sa.String(300), nullable=False),
    #: ``name`` as search compares it (gateway.domain.text_search.fold), kept beside it.
    sa.Column("name_folded", sa.String(300), nullable=True),
    sa.Column("parent_code", sa.String(35), nullable=True),
    #: The channel documents for this unit go through (a name from the config), or NULL.
    sa.Column("channel", sa.String(64), nullable=True),
    #: The unit's registered secure endpoint (classified traffic), or NULL.
    sa.Column("secure_endpoint", sa.String(500), nullable=True),
    #: Tuyệt mật travels only where the route explicitly allows it.
    sa.Column("allows_tuyet_mat", sa.Boolean, nullable=False, default=False),
    sa.Column("is_local", sa.Boolean, nullable=False, default=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    #: The code this one was merged into (the directory listed it as the new code's oldCode).
    sa.Column("replaced_by", sa.String(35), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Index("ix_units_parent_code", "parent_code"),
)

unit_certificates = sa.Table(
    "unit_certificates",
    metadata,
    sa.Column("fingerprint_sha256", sa.String(64), primary_key=True),
    sa.Column("unit_code", sa.String(35), sa.ForeignKey("units.code"), nullable=False, index=True),
    sa.Column("pem", sa.Text, nullable=False),
    sa.Column("subject", sa.String(500), nullable=False),
    sa.Column("not_after", TS, nullable=False),
    sa.Column("added_at", TS, nullable=False),
    sa.Column("revoked_at", TS, nullable=True),
    #: Why: the operator's reason, or the CRL that lists it ("CRL <issuer>: <reason>").
    sa.Column("revoked_reason", sa.String(500), nullable=True),
)

#: The certificate revocation lists docgw holds: the latest of each source (a URL, or a file of
#: ``[certificates] crl_dir``), as fetched (DER).
crls = sa.Table(
    "crls",
    metadata,
    sa.Column("source", sa.String(500), primary_key=True),
    sa.Column("issuer", sa.String(500), nullable=False),
    sa.Column("this_update", TS, nullable=False),
    sa.Column("next_update", TS, nullable=True),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("fetched_at", TS, nullable=False),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    #: Small blobs are kept inline; large ones in blob_chunks under chunk_key.
    sa.Column("data", sa.LargeBinary, nullable=True),
    sa.Column("chunk_key", sa.String(36), nullable=True),
    sa.Column("created_at", TS, nullable=False),
)

blob_chunks = sa.Table(
    "blob_chunks",
    metadata,
    sa.Column("chunk_key", sa.String(36), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("direction", sa.String(3), nullable=False),  # Direction
    sa.Column("kind", sa.String(8), nullable=False),  # PackageKind
    sa.Column("document_id", sa.String(300), nullable=False, index=True),
    sa.Column("sender", sa.String(35), nullable=False, index=True),
    sa.Column("classification", sa.String(10), nullable=False),
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("code", sa.String(100), nullable=True),
    sa.Column("promulgation_date", sa.Date, nullable=True),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("status_code", sa.String(2), nullable=True),  # status packages
    #: For a status package: the document message it is about (NULL while unknown).
    sa.Column("related_message_id", sa.String(36), sa.ForeignKey("messages.id"), nullable=True),
    sa.Column("package_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
    sa.Column("client", sa.String(100), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    #: Received packages: "<sender>|<DocumentId>" (documents) — the receiver-side deduplication.
    sa.Column("dedup_key", sa.String(500), nullable=True),
    sa.Column("route", sa.String(64), nullable=True),
    sa.Column("notices", sa.JSON, nullable=True),
    sa.Column("signer_subject", sa.String(500), nullable=True),
    sa.Column("send_due_at", TS, nullable=True),
    #: Received messages: when the package was handed to the local system (drop folder).
    sa.Column("handed_off_at", TS, nullable=True),
    sa.Column("created_at", TS, nullable=False, index=True),
    #: Outgoing documents: the Bussiness block's BussinessDocType (0 new … 3 replace); NULL for
    #: the others and for documents stored before it was recorded.
    sa.Column("business_doc_type", sa.SmallInteger, nullable=True),
    #: Subject, DocumentId and số/ký hiệu folded for search (gateway/domain/text_search.py):
    #: accents and case do not matter. NULL for a classified message's subject, never stored.
    sa.Column("search_text", sa.Text, nullable=True),
    sa.UniqueConstraint("client", "idempotency_key"),
    sa.UniqueConstraint("direction", "dedup_key"),
    one_of("direction", Direction),
    one_of("kind", PackageKind),
    one_of("classification", Classification),
    # The số/ký hiệu a sender already used (submit's DUPLICATE_DOCUMENT_CODE check).
    sa.Index("ix_messages_sender_code", "sender", "code"),
    # A new document may not reuse a sent one's DocumentId (receivers deduplicate on it): the
    # check in submit, and this index for two submissions racing each other.
    sa.Index(
        "uq_messages_new_document_id",
        "document_id",
        unique=True,
        sqlite_where=sa.text("direction = 'out' AND business_doc_type = 0"),
        postgresql_where=sa.text("direction = 'out' AND business_doc_type = 0"),
    ),
)

recipients = sa.Table(
    "recipients",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(36), sa.ForeignKey("messages.id"), nullable=False),
    sa.Column("unit_code", sa.String(35), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempt_count", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", TS, nullable=True),
    sa.Column("lease_until", TS, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("remote_id", sa.String(200), nullable=True),
    #: The package this recipient gets, when it differs from the message's (e.g. sealed for it).
    sa.Column("package_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=True),
    #: The channel's own view of this recipient (the axis' getSentEdocList send/receive states).
    sa.Column("channel_send_status", sa.String(40), nullable=True),
    sa.Column("channel_receive_status", sa.String(40), nullable=True),
    sa.Column("channel_checked_at", TS, nullable=True),
    sa.Column("business_status", sa.String(2), nullable=True),
    sa.Column("business_updated_at", TS, nullable=True),
    sa.Column("sent_at", TS, nullable=True),
    sa.Column("arrival_due_at", TS, nullable=True),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("message_id", "unit_code"),
    sa.Index("ix_recipients_due", "state", "next_attempt_at"),
    one_of("state", TransportState),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "recipient_id", sa.Integer, sa.ForeignKey("recipients.id"), nullable=False, index=True
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("channel", sa.String(64), nullable=True),
    sa.Column("worker", sa.String(100), nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=True),
    #: NULL while the attempt runs.
    sa.Column("outcome", sa.String(20), nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    one_of("outcome", Outcome),
)

status_events = sa.Table(
    "status_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("direction", sa.String(3), nullable=False),
    #: The status package's own message row (sent or received).
    sa.Column("status_message_id", sa.String(36), sa.ForeignKey("messages.id"), nullable=True),
    #: The document it is about, when known; NULL = unknown document (kept and shown).
    sa.Column("message_id", sa.String(36), sa.ForeignKey("messages.id"), nullable=True, index=True),
    sa.Column("recipient_id", sa.Integer, sa.ForeignKey("recipients.id"), nullable=True),
    sa.Column("reporter", sa.String(35), nullable=False),
    sa.Column("document_id", sa.String(300), nullable=True),
    sa.Column("status_code", sa.String(2), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("reported_at", TS, nullable=True),
    sa.Column("recorded_at", TS, nullable=False),
    sa.Column("out_of_order", sa.Boolean, nullable=False, default=False),
    #: False: the reporter is no unit docgw holds a certificate for, so the status could not be
    #: verified; kept and shown, it moves no business status.
    sa.Column("verified", sa.Boolean, nullable=False, default=True, server_default=sa.true()),
    one_of("direction", Direction),
)

#: Statuses by the document they name: ``docgw import`` finds duplicates and the statuses
#: waiting for their document by it (a scan per package made a 10,000-package import quadratic).
sa.Index("ix_status_events_document_id", status_events.c.document_id)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("message_id", sa.String(36), nullable=True, index=True),
    sa.Column("recipient_id", sa.Integer, nullable=True),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    #: The hash chain (store/audit_chain.py): the row's place, and SHA-256(previous hash ‖ row).
    sa.Column("chain_seq", sa.BigInteger, nullable=True, index=True),
    sa.Column("row_hash", sa.String(64), nullable=True),
    one_of("from_state", TransportState),
    one_of("to_state", TransportState),
)

#: The audit chain's end: one row (id 1), the last place and its hash; appending locks it.
audit_chain_head = sa.Table(
    "audit_chain_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("unit_code", sa.String(35), nullable=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("revoked_at", TS, nullable=True),
    #: After this moment the token authenticates no more (NULL: it does not expire).
    sa.Column("expires_at", TS, nullable=True),
    one_of("role", Role),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("beat_at", TS, nullable=False),
)

#: PostgreSQL scale-out: the last wall-clock tick each scheduled job was claimed for, so that N
#: processes run a job once per tick (gateway/scheduler.py). One row per job, updated in place.
job_ticks = sa.Table(
    "job_ticks",
    metadata,
    sa.Column("job", sa.String(200), primary_key=True),
    sa.Column("tick_at", TS, nullable=False),
    sa.Column("claimed_by", sa.String(100), nullable=False),
    sa.Column("claimed_at", TS, nullable=False),
)

#: Every run of a scheduled job (gateway/usecases/jobs.py), the last ``KEEP_RUNS`` per job: when it
#: ran, how it ended, what it handled, and how many runs of it in a row have failed.
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(200), nullable=False),
    sa.Column("trigger", sa.String(10), nullable=False),  # "schedule" | "manual"
    sa.Column("instance", sa.String(100), nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=True),
    # "running" | "ok" | "failed" | "interrupted" (its process stopped mid-run)
    sa.Column("outcome", sa.String(12), nullable=False),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("items", sa.Integer, nullable=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False),
    # Carried from run to run (the rows are pruned): failures ever, the last run that succeeded.
    sa.Column("failures_total", sa.Integer, nullable=False),
    sa.Column("last_success_at", TS, nullable=True),
    sa.Column("next_run_at", TS, nullable=True),
    sa.CheckConstraint("trigger IN ('schedule', 'manual')", name="trigger"),
    sa.CheckConstraint("outcome IN ('running', 'ok', 'failed', 'interrupted')", name="outcome"),
    sa.Index("ix_job_runs_job_id", "job", "id"),
)

#: What the local document system hears of (docs/howto/integrate.md): arrivals, business statuses
#: of sent documents, transport outcomes that need a person. One row per event and local unit
#: concerned (NULL: none known; only staff see it), written in the transaction of the change.
events = sa.Table(
    "events",
    metadata,
    #: Insertion order only: NOT the feed's order (a lower id may commit later).
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    #: The feed's total order, given after commit by the sequencer (store/events.py); NULL until.
    sa.Column("position", sa.BigInteger, nullable=True, unique=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("message_id", sa.String(36), nullable=True, index=True),
    sa.Column("document_id", sa.String(300), nullable=True),
    sa.Column("unit_code", sa.String(35), nullable=True, index=True),
    #: The other unit: a document's sender, a status's reporter, a failed or held recipient.
    sa.Column("peer", sa.String(35), nullable=True),
    sa.Column("status_code", sa.String(2), nullable=True),
    #: The status package's own message, for status events.
    sa.Column("status_message_id", sa.String(36), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("occurred_at", TS, nullable=False),
)

#: A received document taken by a local unit's system (POST …/ack): what was delivered to a
#: clerk; a local recipient without a row still waits.
takes = sa.Table(
    "takes",
    metadata,
    sa.Column("message_id", sa.String(36), sa.ForeignKey("messages.id"), primary_key=True),
    sa.Column("unit_code", sa.String(35), primary_key=True),
    sa.Column("taken_at", TS, nullable=False),
    sa.Column("taken_by", sa.String(100), nullable=False),
)

#: Registered webhook endpoints (admin). Delivery follows the feed: ``position`` is the last event
#: delivered, so each endpoint gets its events in the feed's order, each until acknowledged (2xx).
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("url", sa.String(500), nullable=False),
    #: The local unit whose events it receives; NULL: every event (gateway-wide).
    sa.Column("unit_code", sa.String(35), nullable=True),
    #: The HMAC key (generated by docgw, shown once); needed in clear to sign.
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", TS, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_attempt_at", TS, nullable=True),
    sa.Column("last_delivered_at", TS, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
)


#: ``docgw import``: each file's outcome, by the SHA-256 of its bytes, written in the same
#: transaction as what it imported, so a run resumed after a crash skips exactly what was done.
import_files = sa.Table(
    "import_files",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(1000), nullable=False),
    sa.Column("outcome", sa.String(10), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("message_id", sa.String(36), nullable=True),
    sa.Column("imported_at", TS, nullable=False),
    one_of("outcome", ImportOutcome),
)


#: The archive: one ASiC-E container per document message (its package, its statuses).
archive_items = sa.Table(
    "archive_items",
    metadata,
    sa.Column("message_id", sa.String(36), sa.ForeignKey("messages.id"), primary_key=True),
    #: The container's blob; NULL once purged.
    sa.Column("container_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=True),
    #: How many status events the container holds: fewer than the message has = re-archive.
    sa.Column("status_count", sa.Integer, nullable=False),
    sa.Column("timestamped", sa.Boolean, nullable=False, default=False),
    sa.Column("archived_at", TS, nullable=False),
    sa.Column("legal_hold", sa.Boolean, nullable=False, default=False),
    sa.Column("hold_reason", sa.Text, nullable=True),
    sa.Column("purged_at", TS, nullable=True),
)


#: One directory sync of one channel: what it asked (a full listing, or the changes since a
#: moment) and what changed in the registry, counted, with a sample of each kind of change.
directory_syncs = sa.Table(
    "directory_syncs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(12), nullable=False),
    #: incremental: the moment the changes were asked from.
    sa.Column("since", TS, nullable=True),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=False),
    sa.Column("listed", sa.Integer, nullable=False),
    #: {"added": n, "renamed": n, …} and {"added": [{"code": …}, …], …} (the first of each kind).
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("changes", sa.JSON, nullable=False),
    sa.Index("ix_directory_syncs_channel", "channel", "id"),
    one_of("mode", SyncMode),
)


#: A unit asked for by a member organisation (or an admin), pending until an admin approves or
#: refuses it: the fields asked for (``fields``: name, parent_code, code_qd20, channel,
#: secure_endpoint, contacts …) and the certificates, as sent.
unit_requests = sa.Table(
    "unit_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(35), nullable=False, index=True),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column("certificates", sa.JSON, nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=False),
    #: The member unit the request was made for (NULL: an admin's).
    sa.Column("requested_for", sa.String(35), nullable=True),
    sa.Column("requested_at", TS, nullable=False),
    #: pending | approved | refused
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("decided_at", TS, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    #: registerAgency at the axis after approval: "registered", "failed: …", or NULL (not asked).
    sa.Column("axis_outcome", sa.Text, nullable=True),
    sa.CheckConstraint("state IN ('pending', 'approved', 'refused')", name="state"),
)

#: Every change of a unit made through the registry, as the unit was after it: who, when, why.
unit_versions = sa.Table(
    "unit_versions",
    metadata,
    sa.Column("code", sa.String(35), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    #: registered, updated, imported, approved, deactivated, reactivated, certificate_added,
    #: certificate_revoked
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("unit", sa.JSON, nullable=False),
    sa.Column("changed_by", sa.String(200), nullable=False),
    sa.Column("changed_at", TS, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
)


#: The documents' own signatures: one row per PDF attachment of a document message, verified on
#: receipt or on send (gateway/usecases/document_signatures.py).
document_signatures = sa.Table(
    "document_signatures",
    metadata,
    sa.Column("message_id", sa.String(36), sa.ForeignKey("messages.id"), primary_key=True),
    #: The attachment's place in the package (1-based).
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("attachment", sa.String(500), nullable=False),
    #: "valid" | "unsigned" | "failing"
    sa.Column("verdict", sa.String(10), nullable=False),
    #: Why the whole PDF could not be verified (PDF_MALFORMED, PDF_ENCRYPTED, …), or NULL.
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    #: Each signature: signer, organisation, time, timestamped, verdict, reasons, modifications.
    sa.Column("signatures", sa.JSON, nullable=False),
    sa.Column("checked_at", TS, nullable=False),
    sa.CheckConstraint("verdict IN ('valid', 'unsigned', 'failing')", name="verdict"),
)


#: Alerts (gateway/usecases/alerts.py): one row per raised condition. At most one open alert per
#: rule and subject (the unique ``open_key``): a condition still true keeps its alert.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    #: The rule's stable code (ALERT_CHANNEL_DOWN …) and what it is about (a channel, a job …).
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    #: "warning" | "critical"
    sa.Column("severity", sa.String(10), nullable=False),
    sa.Column("text_vi", sa.Text, nullable=False),
    sa.Column("text_en", sa.Text, nullable=False),
    #: "rule|subject" while the condition holds; NULL once resolved.
    sa.Column("open_key", sa.String(350), nullable=True, unique=True),
    sa.Column("raised_at", TS, nullable=False),
    sa.Column("last_seen_at", TS, nullable=False),
    sa.Column("resolved_at", TS, nullable=True),
    sa.Column("acked_at", TS, nullable=True),
    sa.Column("acked_by", sa.String(100), nullable=True),
    #: The last state ("open" | "resolved") each way of telling has delivered; behind = retried.
    sa.Column("mail_told", sa.String(10), nullable=True),
    sa.Column("webhook_told", sa.String(10), nullable=True),
    sa.Column("notify_error", sa.Text, nullable=True),
    sa.CheckConstraint("severity IN ('warning', 'critical')", name="severity"),
)
sa.Index("ix_alerts_raised_at", alerts.c.raised_at)

#: The circuit breaker of each channel (unit_code "") or, on a channel that calls each unit at
#: its own endpoint, of each unit on it (gateway/usecases/breakers.py). No row: closed.
channel_breakers = sa.Table(
    "channel_breakers",
    metadata,
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("unit_code", sa.String(35), primary_key=True),
    #: "closed" | "open" | "recovering" | "paused" (an operator's)
    sa.Column("state", sa.String(10), nullable=False),
    #: Transport failures in a row (any success resets it).
    sa.Column("failures", sa.Integer, nullable=False),
    #: open: when the next probe may go; recovering: when the next drain slice may go.
    sa.Column("next_at", TS, nullable=True),
    sa.Column("opened_at", TS, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("changed_by", sa.String(100), nullable=True),
    sa.Column("updated_at", TS, nullable=False),
    sa.CheckConstraint("state IN ('closed', 'open', 'recovering', 'paused')", name="state"),
)


#: The console's people (gateway/web/console/): named accounts, argon2id password hashes. A
#: member acts for the units listed (JSON list of codes); admin and operator for every unit.
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("units", sa.JSON, nullable=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    #: The console's language for this person.
    sa.Column("language", sa.String(2), nullable=False),
    #: Login throttling: failures in a row, and the moment a locked account may try again.
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", TS, nullable=True),
    #: A reset password must be changed at the next login.
    sa.Column("must_change_password", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("disabled_at", TS, nullable=True),
    one_of("role", Role),
    one_of("language", Language),
)

#: Console sessions, server-side: the cookie carries a random id, only its SHA-256 is stored.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_sha256", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(100), sa.ForeignKey("users.name"), nullable=False, index=True),
    #: The session's CSRF token: every form carries it back.
    sa.Column("csrf_token", sa.String(64), nullable=False),
    #: A member of several units acts for one at a time.
    sa.Column("unit_code", sa.String(35), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("seen_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
)
