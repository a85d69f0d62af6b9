#!/usr/bin/env bash
# Starts one service's Redis, brings it up to date with that service's append-only log before any
# client can reach it, then runs the service's log writer beside it (common/src/log-writer.ts), the
# only process that writes the log: started again whenever it exits, stopped when Redis stops.
#
#   start_redis_with_recovery.sh <order|stock|payment>
#
# Environment: REDIS_PORT (TCP port clients use), REDIS_BIND (default 127.0.0.1), REDIS_DIR (data folder, AOF inside), LOG_DIR (the
# service logs), LOG_COMPACT_BYTES (the writer's). Stays in the foreground until Redis exits and exits
# with its status; SIGTERM/SIGINT shut Redis down cleanly. Writes Redis's pid to $REDIS_DIR/redis.pid
# and the writer's to $REDIS_DIR/writer.pid.
set -euo pipefail
service="${1:?usage: start_redis_with_recovery.sh <order|stock|payment>}"
case "$service" in order|stock|payment) ;; *) echo "unknown service: $service" >&2; exit 2 ;; esac
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${REDIS_PORT:?REDIS_PORT is required}"
dir="${REDIS_DIR:?REDIS_DIR is required}"
mkdir -p "$dir"
socket="$dir/recovery.sock"
rm -f "$socket"

# Redis starts with no TCP port: only this script, over a private Unix socket, can reach it while the
# log is replayed. The port opens once the data is complete, so no request sees a half-rebuilt Redis.
redis-server "$here/redis/redis.conf" --bind "${REDIS_BIND:-127.0.0.1}" --port 0 --unixsocket "$socket" --unixsocketperm 700 \
  --dir "$dir" --daemonize no &
redis_pid=$!
echo "$redis_pid" > "$dir/redis.pid"
writer_loop=""
# The writer goes first: it must not outlive its Redis (a writer of a Redis that died could append a
# line after the next recovery read the log). Redis then shuts down cleanly.
stop() {
  [ -n "$writer_loop" ] && kill -TERM "$writer_loop" 2>/dev/null && wait "$writer_loop"
  kill -TERM "$redis_pid" 2>/dev/null; wait "$redis_pid"; exit $?
}
trap stop TERM INT

for _ in $(seq 1 600); do
  [ -S "$socket" ] && redis-cli -s "$socket" ping 2>/dev/null | grep -q PONG && break
  kill -0 "$redis_pid" 2>/dev/null || { wait "$redis_pid"; exit $?; }
  sleep 0.05
done

REDIS_SOCKET="$socket" bun "$here/common/src/recover.ts" "$service"

# The writer reaches Redis over the private socket, and is started again whenever it dies, as long as
# Redis runs. It exits by itself when its connection drops.
keep_writer() {
  local writer=""
  trap '[ -n "$writer" ] && kill -KILL "$writer" 2>/dev/null; exit 0' TERM
  while kill -0 "$redis_pid" 2>/dev/null; do
    REDIS_SOCKET="$socket" bun "$here/common/src/log-writer.ts" "$service" &
    writer=$!
    echo "$writer" > "$dir/writer.pid"
    wait "$writer" || true
    sleep 0.1
  done
}
keep_writer &
writer_loop=$!

redis-cli -s "$socket" config set port "$port" >/dev/null
echo "[redis-$service] recovered and listening on port $port (pid $redis_pid)"
set +e
wait "$redis_pid"
status=$?
# Redis is gone: its writer goes too, before this script exits and anything starts recovery again.
kill -TERM "$writer_loop" 2>/dev/null
wait "$writer_loop"
exit "$status"
