"""Backup and restore of one gateway: ``docgw backup create|verify|prune``, ``docgw restore``.

A backup is a folder ``docgw-backup-YYYYMMDDTHHMMSSZ``:

- ``database.sqlite3`` (SQLite's online backup API, one step: one read transaction, so one
  consistent snapshot while the gateway writes) or ``database.pgdump`` (``pg_dump -Fc`` on a
  snapshot exported by a REPEATABLE READ transaction, in which the schema revision and the audit
  chain's head are read too). Package blobs live in the database (store/blobs.py): the snapshot
  holds every blob its messages reference, and nothing outside it is needed.
- ``keys.tar.enc``: the key folder (private keys, certificates) and the configuration file,
  tarred and encrypted with a passphrase: scrypt (n=2^15, r=8, p=1) → AES-256-GCM; or, when
  ``backup.recipient_cert`` is set, sealed for that certificate with ``envelopes.sealing`` (the
  holder of its private key restores). The manifest's ``keys_protection`` says which.
- ``manifest.json``: SHA-256 and size of each file, docgw's version, the schema revision, the audit
  chain's head and the time it was taken.

It is written to ``NAME.partial`` and renamed when complete: a folder without the suffix is whole.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import tarfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from envelopes import sealing
from envelopes.errors import GatewayError
from gateway.settings import Settings
from gateway.store import snapshots
from gateway.store.database import is_sqlite
from gateway.usecases.ports import Clock, Config

FORMAT = "docgw-backup/1"
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
PGDUMP_FILE = "database.pgdump"
KEYS_FILE = "keys.tar.enc"
CONFIG_NAME = "docgw.toml"
PREFIX = "docgw-backup-"
_MAGIC = b"DOCGW-KEYS-1\n"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


class BackupError(GatewayError):
    code = "BACKUP_INVALID"


class PassphraseMissing(GatewayError):
    code = "BACKUP_PASSPHRASE_MISSING"


class PassphraseWrong(GatewayError):
    code = "BACKUP_PASSPHRASE_WRONG"


class KeyMissing(GatewayError):
    code = "BACKUP_KEY_MISSING"


class DumpFailed(GatewayError):
    code = "BACKUP_TOOL_FAILED"


class RestoreTargetNotEmpty(GatewayError):
    code = "RESTORE_TARGET_NOT_EMPTY"


@dataclass(frozen=True, kw_only=True)
class Created:
    path: Path
    manifest: dict[str, Any]


# ---------------------------------------------------------------------------- key material


def _key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, **_SCRYPT).derive(passphrase.encode("utf-8"))


def encrypt(data: bytes, passphrase: str) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    return _MAGIC + salt + nonce + AESGCM(_key(passphrase, salt)).encrypt(nonce, data, _MAGIC)


def decrypt(blob: bytes, passphrase: str) -> bytes:
    if not blob.startswith(_MAGIC):
        raise BackupError(f"{KEYS_FILE} is not a docgw key archive", element=KEYS_FILE)
    body = blob[len(_MAGIC) :]
    salt, nonce, sealed = body[:16], body[16:28], body[28:]
    try:
        return AESGCM(_key(passphrase, salt)).decrypt(nonce, sealed, _MAGIC)
    except InvalidTag:
        raise PassphraseWrong(
            f"{KEYS_FILE} does not open with this passphrase (or was changed)", element=KEYS_FILE
        ) from None


def _require(passphrase: str | None) -> str:
    if not passphrase:
        raise PassphraseMissing(
            "set the backup passphrase (DOCGW_BACKUP__PASSPHRASE); it has no default",
            element="backup.passphrase",
        )
    return passphrase


@dataclass(frozen=True, kw_only=True)
class Protection:
    """How a key archive is protected: a passphrase, or sealing for a certificate (opened with
    its private key). Either may be given to open; the manifest says which one is needed."""

    passphrase: str | None = None
    recipient: x509.Certificate | None = None
    private_key: PrivateKeyTypes | None = None

    @property
    def kind(self) -> str:
        return "recipient" if self.recipient is not None else "passphrase"

    def lock(self, archive: bytes) -> bytes:
        if self.recipient is not None:
            return sealing.seal(archive, self.recipient)
        return encrypt(archive, _require(self.passphrase))

    def unlock(self, blob: bytes, kind: str) -> bytes:
        if kind == "recipient":
            if self.private_key is None:
                raise KeyMissing(
                    f"{KEYS_FILE} is sealed for a certificate: give its private key (--key)",
                    element="key",
                )
            return sealing.open_sealed(blob, self.private_key)
        return decrypt(blob, _require(self.passphrase))


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read the certificate {path}: {exc}", element=str(path)) from None


def load_private_key(path: Path) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyMissing(f"cannot read the private key {path}: {exc}", element="key") from None


def protection_of(settings: Settings) -> Protection:
    """The protection new backups get: the recipient certificate when one is configured."""
    cert = settings.backup.recipient_cert
    if cert is not None:
        return Protection(recipient=load_certificate(settings.resolve(cert)))
    return Protection(passphrase=settings.backup.passphrase)


def _key_archive(keys_dir: Path, config: Path | None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if keys_dir.is_dir():
            tar.add(keys_dir, arcname="keys")
        if config is not None and config.is_file():
            tar.add(config, arcname=CONFIG_NAME)
    return buffer.getvalue()


# -------------------------------------------------------------------------------- database


def sqlite_path(url: str) -> Path:
    database = sa.engine.make_url(url).database
    if not database:
        raise BackupError("an in-memory SQLite database cannot be backed up", element="database")
    return Path(database)


def _libpq_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL for pg_dump/pg_restore (driver name dropped); the password goes by environment."""
    parsed = sa.engine.make_url(url)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


async def _run_tool(*argv: str, env: Mapping[str, str]) -> None:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(env)
        )
    except FileNotFoundError:
        raise DumpFailed(f"{argv[0]} is not installed (the PostgreSQL client tools)") from None
    _, err = await process.communicate()
    if process.returncode != 0:
        message = err.decode(errors="replace").strip().splitlines()
        raise DumpFailed(f"{argv[0]} exited {process.returncode}: {' | '.join(message[-3:])}")


def _facts(found: snapshots.SnapshotFacts) -> dict[str, Any]:
    """What the manifest records of the copied database."""
    head = {"seq": found.audit_seq, "hash": found.audit_hash}
    return {"schema_revision": found.schema_revision, "audit_head": head}


async def _postgres_snapshot(url: str, target: Path) -> dict[str, Any]:
    """pg_dump on a snapshot the store exports and holds open while it runs."""
    libpq, env = _libpq_url(url)

    async def dump(snapshot: str) -> None:
        await _run_tool(
            "pg_dump", "--format=custom", "--no-owner", "--no-privileges",
            f"--snapshot={snapshot}", f"--file={target}", f"--dbname={libpq}", env=env,
        )  # fmt: skip

    return _facts(await snapshots.postgres_snapshot(url, dump))


# ---------------------------------------------------------------------------------- create


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _version() -> str:
    try:
        return package_metadata.version("docgw")
    except package_metadata.PackageNotFoundError:
        return "unknown"


async def create_backup(
    settings: Settings,
    target_dir: Path,
    *,
    protection: Protection,
    config: Path | None,
    now: dt.datetime,
) -> Created:
    """Write one backup into ``target_dir`` (created if missing); returns its folder."""
    if protection.recipient is None:
        _require(protection.passphrase)
    name = f"{PREFIX}{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    final = target_dir / name
    work = target_dir / f"{name}.partial"
    if final.exists():
        raise BackupError(f"{final} exists already", element="backup.dir")
    target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    url = settings.database.url
    if is_sqlite(url):
        database_file = SQLITE_FILE
        source = sqlite_path(url)  # as the engine opens it
        facts = _facts(
            await asyncio.to_thread(snapshots.sqlite_snapshot, source, work / SQLITE_FILE)
        )
    else:
        database_file = PGDUMP_FILE
        facts = await _postgres_snapshot(url, work / PGDUMP_FILE)
    # Keys after the database: a key is never removed by the gateway, so the pair holds.
    archive = _key_archive(settings.resolve(settings.keys.dir), config)
    (work / KEYS_FILE).write_bytes(await asyncio.to_thread(protection.lock, archive))
    manifest = {
        "format": FORMAT,
        "docgw_version": _version(),
        "created_at": now.astimezone(dt.UTC).isoformat(),
        "database": {"kind": "sqlite" if database_file == SQLITE_FILE else "postgresql"},
        "keys_protection": protection.kind,
        **facts,
        "files": {
            file: {"sha256": _sha256(work / file), "size": (work / file).stat().st_size}
            for file in (database_file, KEYS_FILE)
        },
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    work.rename(final)
    return Created(path=final, manifest=manifest)


# ---------------------------------------------------------------------------------- verify


def read_manifest(backup: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((backup / MANIFEST).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BackupError(
            f"cannot read {backup / MANIFEST}: {exc.strerror}", element=MANIFEST
        ) from None
    except ValueError as exc:
        raise BackupError(f"{MANIFEST} is not JSON: {exc}", element=MANIFEST) from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BackupError(f"{MANIFEST} is not a {FORMAT} manifest", element=MANIFEST)
    return manifest


def verify_backup(backup: Path, *, protection: Protection) -> dict[str, Any]:
    """Every file's size and SHA-256 against the manifest, the key archive opened (passphrase or
    private key), and a SQLite copy's own integrity check. Returns the manifest."""
    manifest = read_manifest(backup)
    kind = str(manifest.get("keys_protection", "passphrase"))
    if kind == "passphrase":
        _require(protection.passphrase)
    for file, expected in manifest["files"].items():
        path = backup / file
        if not path.is_file():
            raise BackupError(f"{file} is missing", element=file)
        if path.stat().st_size != expected["size"] or _sha256(path) != expected["sha256"]:
            raise BackupError(f"{file} does not match its checksum in the manifest", element=file)
    with tarfile.open(
        fileobj=io.BytesIO(protection.unlock((backup / KEYS_FILE).read_bytes(), kind))
    ):
        pass
    if SQLITE_FILE in manifest["files"] and not snapshots.sqlite_intact(backup / SQLITE_FILE):
        raise BackupError(f"{SQLITE_FILE} fails SQLite's integrity check", element=SQLITE_FILE)
    return manifest


# --------------------------------------------------------------------------------- restore


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # JSON's escapes (\" \\ \n \uXXXX) are TOML basic-string escapes too.
    return json.dumps(str(value), ensure_ascii=False)


def _toml(table: Mapping[str, Any], path: str = "") -> str:
    """A TOML document of plain values and tables (what a docgw configuration holds)."""
    lines = [f"{key} = {_toml_value(v)}" for key, v in table.items() if not isinstance(v, dict)]
    text = (f"[{path}]\n" if path and lines else "") + "".join(line + "\n" for line in lines)
    for key, value in table.items():
        if isinstance(value, dict):
            text += _toml(value, f"{path}.{key}" if path else key)
    return text


def restore_backup(
    backup: Path, home: Path, *, protection: Protection, database_url: str | None
) -> Path:
    """Bring a gateway back into the empty folder ``home``: its keys, its configuration (the
    database URL and key folder pointed at the restored ones) and its database — SQLite as
    ``home/docgw.db``, PostgreSQL into ``database_url`` (an empty database). Returns the
    configuration file; ``docgw --config THAT serve`` migrates if needed and resumes."""
    manifest = verify_backup(backup, protection=protection)
    if home.exists() and any(home.iterdir()):
        raise RestoreTargetNotEmpty(f"{home} is not empty", element="dir")
    postgres = PGDUMP_FILE in manifest["files"]
    if postgres and not database_url:
        raise BackupError("a PostgreSQL backup needs --database-url", element="database_url")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    kind = str(manifest.get("keys_protection", "passphrase"))
    archive = protection.unlock((backup / KEYS_FILE).read_bytes(), kind)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(home, filter="data")
    config_file = home / CONFIG_NAME
    raw = tomllib.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    if postgres:
        assert database_url is not None
        url = database_url
        libpq, env = _libpq_url(url)
        asyncio.run(
            _run_tool(
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                f"--dbname={libpq}",
                str(backup / PGDUMP_FILE),
                env=env,
            )
        )
    else:
        url = f"sqlite+aiosqlite:///{(home / 'docgw.db').resolve()}"
        shutil.copyfile(backup / SQLITE_FILE, home / "docgw.db")
    raw.setdefault("database", {})["url"] = url
    raw.setdefault("keys", {})["dir"] = str((home / "keys").resolve())
    config_file.write_text(_toml(raw), encoding="utf-8")
    return config_file


# ------------------------------------------------------------------------------ retention


def prune_backups(target_dir: Path, *, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest whole backups in ``target_dir`` (by the time in their
    names), and the unfinished ``.partial`` folders of earlier runs. Returns what it removed."""
    if keep < 1:
        raise BackupError("keep at least one backup", element="backup.keep")
    if not target_dir.is_dir():
        return []
    whole = sorted(p for p in target_dir.iterdir() if p.is_dir() and _is_backup(p.name))
    partial = [p for p in target_dir.iterdir() if p.is_dir() and p.name.endswith(".partial")]
    removed = whole[:-keep] + [p for p in partial if p.name.startswith(PREFIX)]
    for path in removed:
        shutil.rmtree(path)
    return removed


def _is_backup(name: str) -> bool:
    return name.startswith(PREFIX) and not name.endswith(".partial")


class Scheduled(Config, Clock, Protocol):
    """What the scheduled backup uses: the settings and the time."""


async def scheduled_backup(gateway: Scheduled) -> None:
    """The scheduled job: one backup into ``backup.dir``, then keep ``backup.keep`` of them. The
    configuration file kept is ``docgw.toml`` in the configuration's folder, when there is one."""
    settings = gateway.settings
    target = settings.resolve(settings.backup.dir)
    config = settings.base_dir / CONFIG_NAME
    await create_backup(
        settings,
        target,
        protection=protection_of(settings),
        config=config if config.is_file() else None,
        now=gateway.clock(),
    )
    await asyncio.to_thread(prune_backups, target, keep=settings.backup.keep)
