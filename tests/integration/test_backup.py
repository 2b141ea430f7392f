"""``docgw backup create | verify | prune`` and ``docgw restore`` as an operator runs them (real
processes), on SQLite and PostgreSQL (pg_dump / pg_restore): a restored gateway holds the same
messages, package bytes, keys and audit chain; a backup changed on disk, a wrong or missing
passphrase and a non-empty target are refused with one line."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import EXAMPLES, SENDER, register_all, write_config

from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from gateway.bootstrap import build
from gateway.scheduler import create_scheduler
from gateway.settings import SettingsError, load_settings
from gateway.store import audit_chain
from gateway.store.database import migrate
from gateway.store.tables import blob_chunks, blobs, messages
from gateway.usecases import submit
from gateway.usecases.jobs import scheduled_jobs

DOCGW = Path(sys.executable).parent / "docgw"
PASSPHRASE = "cụm mật khẩu dài của bản sao lưu"


def docgw(
    *args: str | Path, passphrase: str | None = PASSPHRASE
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
    }
    if passphrase is not None:
        env["DOCGW_BACKUP__PASSPHRASE"] = passphrase
    return subprocess.run(
        [str(DOCGW), *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )


def assert_refused(result: subprocess.CompletedProcess[str], code: str, text: str = "") -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.stderr
    assert text in lines[0], lines[0]


def contents(config: Path) -> dict[str, Any]:
    """What must survive: messages, package bytes, the audit chain."""

    async def run() -> dict[str, Any]:
        gateway = await build(load_settings(config, {}))
        try:
            async with gateway.engine.connect() as conn:
                ids = (
                    await conn.execute(sa.select(messages.c.id, messages.c.package_sha256))
                ).all()
                packages = (await conn.execute(sa.select(blobs.c.sha256, blobs.c.data))).all()
                chunks = (await conn.execute(sa.select(blob_chunks.c.data))).all()
                chain = await audit_chain.verify(conn)
            return {
                "messages": sorted(tuple(r) for r in ids),
                "blobs": sorted((r.sha256, bytes(r.data or b"")) for r in packages),
                "chunks": sorted(bytes(r.data) for r in chunks),
                "chain": (chain.broken, chain.head_seq, chain.head_hash),
            }
        finally:
            await gateway.close()

    return asyncio.run(run())


def submit_some(home: Path, database_url: str, keys_dir: Path, *, count: int) -> Path:
    """``count`` documents submitted (queued: no channel runs), the last with a 600 KB
    attachment (its package is chunked); returns the configuration file."""
    config = write_config(
        home / "docgw.toml", database_url=database_url, keys_dir=keys_dir, local_units=(SENDER,)
    )
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))

    async def run() -> None:
        gateway = await build(load_settings(config, {}))
        try:
            await migrate(gateway.engine)
            await register_all(gateway, keys_dir)
            for i in range(count):
                body = os.urandom(600_000 if i == count - 1 else 100)
                request = parse_metadata(
                    {
                        **meta,
                        "document_id": f"sao-luu-{i}",
                        "code": {**meta["code"], "number": str(i + 1)},
                    },
                    today=gateway.clock().date(),
                )
                await submit.submit_document(
                    gateway,
                    request,
                    [AttachmentSource(name=f"t{i}.pdf", open=lambda b=body: io.BytesIO(b))],
                    client="test",
                    actor="test",
                    idempotency_key=f"k{i}",
                )
        finally:
            await gateway.close()

    asyncio.run(run())
    return config


@pytest.fixture
def gateway_home(database_url: str, keys_dir: Path, tmp_path: Path) -> Path:
    """A gateway with a few documents queued (a large one chunked), its config in its folder."""
    home = tmp_path / "home"
    home.mkdir()
    return submit_some(home, database_url, keys_dir, count=5)


def test_backup_verify_restore_round_trip(
    gateway_home: Path, databases: Callable[[], str], database_url: str, tmp_path: Path
) -> None:
    created = docgw("--config", gateway_home, "backup", "create", "--to", tmp_path / "backups")
    assert created.returncode == 0, created.stderr
    (backup,) = (tmp_path / "backups").iterdir()
    assert backup.name.startswith("docgw-backup-") and not backup.name.endswith(".partial")
    manifest = json.loads((backup / "manifest.json").read_text())
    before = contents(gateway_home)
    assert manifest["audit_head"] == {"seq": before["chain"][1], "hash": before["chain"][2]}
    assert manifest["schema_revision"] and manifest["docgw_version"]
    # The key archive is encrypted: no PEM in it.
    assert b"PRIVATE KEY" not in (backup / "keys.tar.enc").read_bytes()

    verified = docgw("backup", "verify", backup)
    assert verified.returncode == 0, verified.stderr

    target = tmp_path / "restored"
    extra = [] if database_url.startswith("sqlite") else ["--database-url", databases()]
    restored = docgw("restore", backup, "--dir", target, *extra)
    assert restored.returncode == 0, restored.stderr
    config = target / "docgw.toml"
    assert contents(config) == before
    assert before["messages"] and before["chain"][0] is None
    keys = load_settings(config, {}).keys.dir
    original = load_settings(gateway_home, {}).keys.dir
    for pem in original.iterdir():
        assert (keys / pem.name).read_bytes() == pem.read_bytes()
    # The restored gateway runs: its audit chain verifies through the CLI too.
    assert docgw("--config", config, "audit", "verify").returncode == 0


def test_a_changed_backup_is_refused_by_verify(gateway_home: Path, tmp_path: Path) -> None:
    assert docgw("--config", gateway_home, "backup", "create", "--to", tmp_path).returncode == 0
    (backup,) = tmp_path.glob("docgw-backup-*")
    database = next(backup.glob("database.*"))
    data = bytearray(database.read_bytes())
    data[len(data) // 2] ^= 0x01
    database.write_bytes(bytes(data))
    assert_refused(docgw("backup", "verify", backup), "BACKUP_INVALID", database.name)
    assert_refused(
        docgw("restore", backup, "--dir", tmp_path / "x"), "BACKUP_INVALID", database.name
    )
    assert not (tmp_path / "x").exists()


def test_the_passphrase_is_required_and_checked(gateway_home: Path, tmp_path: Path) -> None:
    assert_refused(
        docgw("--config", gateway_home, "backup", "create", "--to", tmp_path, passphrase=None),
        "BACKUP_PASSPHRASE_MISSING",
    )
    assert list(tmp_path.glob("docgw-backup-*")) == []
    assert docgw("--config", gateway_home, "backup", "create", "--to", tmp_path).returncode == 0
    (backup,) = tmp_path.glob("docgw-backup-*")
    assert_refused(docgw("backup", "verify", backup, passphrase="sai"), "BACKUP_PASSPHRASE_WRONG")
    assert_refused(docgw("backup", "verify", backup, passphrase=None), "BACKUP_PASSPHRASE_MISSING")


def test_restore_refuses_a_folder_that_is_not_empty(gateway_home: Path, tmp_path: Path) -> None:
    assert docgw("--config", gateway_home, "backup", "create", "--to", tmp_path).returncode == 0
    (backup,) = tmp_path.glob("docgw-backup-*")
    target = tmp_path / "used"
    target.mkdir()
    (target / "something").write_text("x")
    assert_refused(docgw("restore", backup, "--dir", target), "RESTORE_TARGET_NOT_EMPTY")
    assert sorted(p.name for p in target.iterdir()) == ["something"]


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    for stamp in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
        (tmp_path / f"docgw-backup-{stamp}").mkdir()
    (tmp_path / "docgw-backup-20260104T000000Z.partial").mkdir()
    (tmp_path / "unrelated").mkdir()
    result = docgw("backup", "prune", "--to", tmp_path, "--keep", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "docgw-backup-20260102T000000Z",
        "docgw-backup-20260103T000000Z",
        "unrelated",
    ]


def test_the_scheduled_backup_runs_on_its_ticks_and_keeps_the_newest(
    make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    target = tmp_path / "scheduled"
    extra = (
        f'[backup]\ndir = "{target}"\ninterval_hours = 0.001\nkeep = 2\n'
        f'passphrase = "{PASSPHRASE}"\n'  # in the file for the test only; an operator uses env
    )
    seen: set[str] = set()

    async def scenario() -> list[str]:
        async with make_gateway(extra=extra) as gateway:
            scheduler = create_scheduler(gateway, scheduled_jobs(gateway))
            scheduler.start()
            try:
                deadline = asyncio.get_running_loop().time() + 60
                while len(seen) < 4 and asyncio.get_running_loop().time() < deadline:
                    if target.is_dir():
                        seen.update(p.name for p in target.iterdir() if p.suffix != ".partial")
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # the last run's prune
            finally:
                scheduler.shutdown(wait=True)
            return sorted(p.name for p in target.iterdir())

    left = asyncio.run(scenario())
    assert len(seen) >= 4, seen
    # The two newest of all it made (one more may have come after the last look).
    assert left == sorted(seen | set(left))[-2:], (left, sorted(seen))
    for name in left:
        assert docgw("backup", "verify", target / name).returncode == 0


def test_a_scheduled_backup_without_a_passphrase_does_not_start(tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text("[backup]\ninterval_hours = 24\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {})
    assert caught.value.element == "backup.passphrase"
    assert load_settings(config, {"DOCGW_BACKUP__PASSPHRASE": "x"}).backup.interval_hours == 24


def test_a_backup_sealed_for_a_recipient_certificate_opens_only_with_its_key(
    gateway_home: Path, keys_dir: Path, tmp_path: Path
) -> None:
    escrow = keys_dir / "000.00.00.H14.cert.pem"  # stands for an escrow certificate
    env_args = ("--config", gateway_home)
    created = docgw_env(
        {"DOCGW_BACKUP__RECIPIENT_CERT": str(escrow)},
        *env_args, "backup", "create", "--to", tmp_path / "b",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    (backup,) = (tmp_path / "b").iterdir()
    assert json.loads((backup / "manifest.json").read_text())["keys_protection"] == "recipient"
    assert_refused(docgw("backup", "verify", backup, passphrase=None), "BACKUP_KEY_MISSING")
    wrong = keys_dir / "000.00.00.H41.key.pem"
    assert_refused(docgw("backup", "verify", backup, "--key", wrong), "SEAL_INVALID")
    right = keys_dir / "000.00.00.H14.key.pem"
    assert docgw("backup", "verify", backup, "--key", right, passphrase=None).returncode == 0
    if "sqlite" in load_settings(gateway_home, {}).database.url:
        target = tmp_path / "restored"
        restored = docgw("restore", backup, "--dir", target, "--key", right, passphrase=None)
        assert restored.returncode == 0, restored.stderr
        assert contents(target / "docgw.toml") == contents(gateway_home)


def docgw_env(extra: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
    } | extra
    return subprocess.run(
        [str(DOCGW), *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )
