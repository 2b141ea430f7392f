#!/usr/bin/env bash
# Quick start, main job: set everything up, then run `docgw demo` — the axis simulator and four
# gateways in one process on loopback, exchanging documents and statuses while it tells what
# happens and where to look; Ctrl-C stops it. Arguments go to the demo (--once, --dir DIR).
# The package tool walkthrough that used to live here: docs/howto/package-tool.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/docgw demo "$@"
