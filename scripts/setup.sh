#!/usr/bin/env bash
# Makes sure a Debian machine has what the stack and the tests need; quiet and quick when it does.
#   bun                      npm install -g bun (if npm is there)
#   redis-server, nginx      apt-get install -y redis-server nginx (as root, with apt-get)
#   chromium                 apt-get install -y chromium (the browser tests' headless browser)
#   node_modules             bun install --frozen-lockfile (when missing or older than the manifests)
# Whatever it cannot install, it names, and stops.
#
# Installing nginx or redis-server with apt may start the system's own nginx (port 80) and Redis
# (port 6379). That is harmless: the stack runs its own processes on its own ports, never uses those,
# and never stops them.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { echo "[setup] $*" >&2; }
die() { echo "[setup] $*" >&2; exit 1; }
# nginx lives in /usr/sbin, which a non-root user's PATH on Debian lacks.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]; }

# --- bun -------------------------------------------------------------------------------------------
if ! command -v bun >/dev/null 2>&1; then
  command -v npm >/dev/null 2>&1 ||
    die "bun is missing, and npm is not there to install it. Install the npm package 'bun' (npm install -g bun; npm is in Debian's 'npm' package), or see https://bun.sh"
  say "installing bun: npm install -g bun"
  npm install -g bun >&2 || die "npm install -g bun failed; install bun yourself (https://bun.sh) and run this again"
  hash -r
  command -v bun >/dev/null 2>&1 || die "bun was installed into $(npm prefix -g)/bin, which is not on PATH; add it and run this again"
fi

# --- redis-server, nginx ---------------------------------------------------------------------------
missing=()
for program in redis-server redis-cli nginx; do have "$program" || missing+=("$program"); done
if ((${#missing[@]} > 0)); then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server and nginx (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq redis-server nginx >&2
  else
    die "missing: ${missing[*]}. Install the Debian packages: apt-get install -y redis-server nginx (as root)"
  fi
fi

# --- chromium ---------------------------------------------------------------------------------------
# The browser tests (scripts/test/e2e/browser.test.ts) load the gateway's pages in Debian's chromium,
# headless. Without it they fail, naming it; they are never skipped.
if ! have chromium; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium (the browser tests' headless browser)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq chromium >&2
  else
    die "missing: chromium (the browser tests' headless browser). Install the Debian package: apt-get install -y chromium (as root)"
  fi
fi

# --- node_modules ----------------------------------------------------------------------------------
# The stamp holds a hash of the manifests the last successful install used; any change means stale.
manifests=(package.json bun.lock common/package.json order/package.json stock/package.json payment/package.json)
stamp="$repo/node_modules/.setup-manifests.sha256"
wanted="$(cd "$repo" && sha256sum "${manifests[@]}")"
if [ ! -d "$repo/node_modules" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  say "installing dependencies: bun install --frozen-lockfile"
  (cd "$repo" && bun install --frozen-lockfile >&2) || die "bun install --frozen-lockfile failed (is bun.lock up to date with package.json?)"
  printf '%s\n' "$wanted" > "$stamp"
fi
