#!/usr/bin/env bash
# Prerequisites, then every test (see scripts/test.ts); arguments go to each `bun test` run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo"
exec bun scripts/test.ts "$@"
