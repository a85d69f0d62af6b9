#!/usr/bin/env bash
# Prerequisites, then the local stack in the foreground: scripts/up.sh [--replicas N] [--port-offset K] [--detach]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo"
exec bun scripts/up.ts "$@"
