#!/usr/bin/env bash
# Quick start, main job: set everything up, then walk through docgw's package tool on the example
# document: development keys for two units, build + sign, verify, inspect. Output goes to var/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
docgw=.venv/bin/docgw
mkdir -p var/quickstart
keys=var/quickstart/keys
sender=000.00.00.G22
recipient=000.00.00.H41
set -x
"$docgw" keys init --dir "$keys" --unit "$sender" --unit "$recipient"
"$docgw" keys show --dir "$keys"
"$docgw" package build --meta examples/new-document.json --attach examples/van-ban.txt \
  --key "$keys/$sender.key.pem" --cert "$keys/$sender.cert.pem" -o var/quickstart/document.edxml
"$docgw" package verify var/quickstart/document.edxml --trust "$keys/ca.cert.pem"
"$docgw" package inspect var/quickstart/document.edxml
