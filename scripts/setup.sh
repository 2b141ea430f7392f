#!/usr/bin/env bash
# Shared by run.sh and test.sh: a virtual environment in .venv with docgw installed (not editable,
# so the installed package — schemas included — is what runs), plus the extras named in $1.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check ".${extras:+[$extras]}"
