"""The pieces of a backup that need no database: the passphrase container (scrypt → AES-256-GCM)
and the configuration a restore writes back (plain TOML that reads back as it was)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.usecases.backup import BackupError, PassphraseWrong, _toml, decrypt, encrypt

REPO = Path(__file__).resolve().parents[2]


def test_the_key_archive_opens_only_with_its_passphrase_and_unchanged() -> None:
    sealed = encrypt(b"-----BEGIN PRIVATE KEY-----", "mật khẩu")
    assert b"PRIVATE KEY" not in sealed
    assert decrypt(sealed, "mật khẩu") == b"-----BEGIN PRIVATE KEY-----"
    with pytest.raises(PassphraseWrong):
        decrypt(sealed, "mat khau")
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(PassphraseWrong):
        decrypt(bytes(flipped), "mật khẩu")
    with pytest.raises(BackupError):
        decrypt(b"not an archive", "mật khẩu")


def test_the_restored_configuration_reads_back_as_the_original() -> None:
    raw = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    raw["channels"]["axis"]["retry"] = {"max_attempts": 3, "jitter": 0.25}
    raw["gateway"]["local_units"] = ["000.00.00.G22", 'tên "lạ" \\ ở đây']
    assert tomllib.loads(_toml(raw)) == raw
