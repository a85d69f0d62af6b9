#!/bin/bash
# The gateway container's command: nginx, with its replicas' names kept up to date.
#
# nginx resolves upstream names when it loads its configuration, and refuses to start if one does not
# resolve. In compose a replica may be down when the gateway starts, and one that comes back may have
# another address (Docker gives a stopped container's address to the next one that starts). So this
# script looks each replica's name up in Docker's DNS, writes the configuration with addresses in
# place of names, one server per address (a name that does not resolve yet gets 127.0.0.1, which
# refuses at once; in Kubernetes a headless Service's name gives every ready pod), and runs
# nginx on it; then, every second, looks the names up again and reloads nginx when an address has
# changed. A name that stops resolving (a stopped container, a Service with no ready pod) keeps its
# last addresses: nginx benches a replica that fails it (gateway/render.ts), so there is nothing to
# reload for.
#
#   run.sh [source config]      default /etc/nginx/nginx.conf (gateway/nginx.compose.conf)
set -uo pipefail
source_conf="${1:-/etc/nginx/nginx.conf}"
conf=/run/nginx.resolved.conf
# Looking names up again this often: a replica back at another address takes requests within it.
lookup_interval_s=1

# The `host:port` servers of the configuration's upstream blocks.
names=$(sed -n 's/^ *server \([A-Za-z0-9._-]*\):[0-9]* .*/\1/p' "$source_conf" | sort -u)
declare -A address

# Every address of a name, sorted, space-separated, into $found: one in compose (a container), one
# per ready pod in Kubernetes (a headless Service). Bash builtins but for getent, and no subshell for
# the answer: this runs every second for every name, and each process started takes the CPU the
# replicas beside the gateway need.
lookup() {
  local address _ i sorted=()
  while read -r address _; do
    for i in "${!sorted[@]}"; do
      [[ ${sorted[i]} == "$address" ]] && continue 2
      if [[ ${sorted[i]} > "$address" ]]; then
        sorted=("${sorted[@]:0:i}" "$address" "${sorted[@]:i}")
        continue 2
      fi
    done
    sorted+=("$address")
  done < <(getent ahostsv4 "$1")
  found="${sorted[*]}"
}

# Looks every name up; returns 0 if an address changed (or was first found).
refresh() {
  local changed=1 name found
  for name in $names; do
    lookup "$name"
    if [ -z "${address[$name]:-}" ]; then
      address[$name]=${found:-127.0.0.1}
      changed=0
    elif [ -n "$found" ] && [ "$found" != "${address[$name]}" ]; then
      echo "[gateway] $name is now at $found (was ${address[$name]}); reloading nginx" >&2
      address[$name]=$found
      changed=0
    fi
  done
  return $changed
}

# The configuration with each `server name:port …` line repeated once per address of the name.
render() {
  local map="" name
  for name in $names; do map+="$name=${address[$name]};"; done
  awk -v map="$map" '
    BEGIN {
      n = split(map, pairs, ";")
      for (i = 1; i <= n; i++) if (pairs[i] != "") { split(pairs[i], kv, "="); addresses[kv[1]] = kv[2] }
    }
    match($0, /^ *server [A-Za-z0-9._-]+:/) {
      name = substr($0, 1, RLENGTH - 1); sub(/^ *server /, "", name)
      if (name in addresses) {
        indent = $0; sub(/server .*/, "", indent)
        rest = substr($0, RLENGTH + 1)
        k = split(addresses[name], list, " ")
        for (j = 1; j <= k; j++) print indent "server " list[j] ":" rest
        next
      }
    }
    { print }' "$source_conf" > "$conf.new" && mv "$conf.new" "$conf"
}

refresh
render
nginx -c "$conf" -g 'daemon off;' &
nginx_pid=$!
trap 'kill -TERM "$nginx_pid" 2>/dev/null; wait "$nginx_pid"; exit $?' TERM INT QUIT

while kill -0 "$nginx_pid" 2>/dev/null; do
  sleep "$lookup_interval_s" &
  wait $!
  if refresh; then
    render
    nginx -c "$conf" -s reload
  fi
done
wait "$nginx_pid"
