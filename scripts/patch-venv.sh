#!/usr/bin/env bash
# Applies the patch series onto the openrlhf installed in .venv/ (`patch apply` picks the series of its version). The
# venv belongs to this repository, so when it carries an older revision of the series (the check reports it as
# modified), openrlhf is reinstalled pristine first, at the release constraints/cpu.txt pins.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLI="$ROOT/.venv/bin/openrlhf-epo"
if ! "$CLI" patch status >/dev/null 2>&1; then
  echo "[patch] the installed openrlhf carries another revision of the series: reinstalling it pristine"
  "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall \
    -c "$ROOT/constraints/cpu.txt" openrlhf 2>&1 | { grep -v "^WARNING: Location 'file://" || true; }
fi
"$CLI" patch apply
