#!/usr/bin/env bash
# Quick start, tests: set everything up and run the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

# Independent tools the tests check docgw against: Debian's xmlsec1 (XML-DSig interop), unzip
# (the archive's ASiC-E containers) and chromium (the console's browser tests drive it through
# Playwright; no browser is downloaded). openssl and the PostgreSQL client come with the system
# and its PostgreSQL.
missing=""
for tool in xmlsec1 unzip chromium; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "note:$missing missing and cannot be installed here; the tests that run them fail or skip" >&2
  fi
fi

# PostgreSQL: the tests that need it read TEST_POSTGRES_URL. Use the machine's server on
# 127.0.0.1:5432 (database "test", trust auth), starting it if it is installed but down.
if [ -z "${TEST_POSTGRES_URL:-}" ]; then
  if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432 \
      && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
    export TEST_POSTGRES_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
  else
    echo "note: no PostgreSQL on 127.0.0.1:5432; the PostgreSQL tests will skip" >&2
  fi
fi

bash scripts/setup.sh test
# Static checks first: lint, formatting, strict types (pyproject.toml holds their settings).
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# pytest from the venv's bin/: the source tree is not on sys.path, so the tests exercise the
# installed package.
exec .venv/bin/pytest "$@"
