#!/usr/bin/env bash
# Quick start, tests: set everything up and run the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's xmlsec1 is the independent XML-DSig implementation the interop tests run.
if ! command -v xmlsec1 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xmlsec1 >/dev/null
  else
    echo "note: xmlsec1 is missing and cannot be installed here; the interop tests will skip" >&2
  fi
fi

bash scripts/setup.sh test
# pytest from the venv's bin/: the source tree is not on sys.path, so the tests exercise the
# installed package.
exec .venv/bin/pytest "$@"
