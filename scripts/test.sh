#!/usr/bin/env bash
# Prerequisites, the type check and the linter, then every test (see scripts/test.ts); arguments go to each `bun test` run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo"
# Static checks first: they fail in seconds and name the line.
bun run typecheck
bun run lint
exec bun scripts/test.ts "$@"
