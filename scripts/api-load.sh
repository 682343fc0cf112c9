#!/usr/bin/env bash
# Issue 28's load benchmark: the same client (benches/src/bin/api_load.rs) against strata's
# daemon and against dockerd, one after the other on this machine, then a table of both.
# Each gets, for SECONDS (default 60): 64 clients pinging and listing, 16 clients churning
# `/bin/busybox true` containers, 1,000 half-open connections, 100 `events` and 100
# `logs -f` followers; then the server's CPU idle with the 200 followers, and
# `containers/json?all=1` at 1,000 containers. Root only; dockerd must run (scripts/test.sh
# starts one). JSON of both runs goes to target/api-load.json.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_LOAD="${1:-60}"
cargo build --release -q -p strata-cli -p strata-benches --bin strata --bin api_load
client=/usr/bin/docker
[ -x "$client" ] || client=$(command -v docker)
work=$(mktemp -d /var/tmp/strata-api-load.XXXXXX)
trap 'kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# The strata daemon on overlay2 (as dockerd), its file limit raised as dockerd's unit does.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
./target/release/strata --data-root "$work/root" --storage-driver overlay2 daemon -H "unix://$work/strata.sock" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$work/strata.sock" ] && break; sleep 0.05; done
image=fixtures/images/busybox-wh.docker.tar
DOCKER_HOST="unix://$work/strata.sock" "$client" load -i "$image" >/dev/null
"$client" load -i "$image" >/dev/null
echo "strata daemon: ${SECONDS_LOAD}s of load..." >&2
strata_json=$(./target/release/api_load "$work/strata.sock" "$SECONDS_LOAD")
echo "dockerd: ${SECONDS_LOAD}s of load..." >&2
docker_json=$(./target/release/api_load /var/run/docker.sock "$SECONDS_LOAD")
printf '{"strata":%s,"dockerd":%s}\n' "$strata_json" "$docker_json" > target/api-load.json
python3 - "$strata_json" "$docker_json" <<'PY'
import json, sys
s, d = json.loads(sys.argv[1]), json.loads(sys.argv[2])
rows = [
    ("ping+list req/s", s["ping_list"]["requests_per_s"], d["ping_list"]["requests_per_s"], "%.0f"),
    ("ping+list p99 ms", s["ping_list"]["p99_ms"], d["ping_list"]["p99_ms"], "%.1f"),
    ("ping+list failed", s["ping_list"]["failed"], d["ping_list"]["failed"], "%d"),
    ("churn containers/s", s["churn"]["containers_per_s"], d["churn"]["containers_per_s"], "%.1f"),
    ("churn failed", s["churn"]["failed"], d["churn"]["failed"], "%d"),
    ("failed starts", s["churn"]["failed_starts"], d["churn"]["failed_starts"], "%d"),
    ("server CPU under load %", s["server_cpu_under_load_pct"], d["server_cpu_under_load_pct"], "%.0f"),
    ("CPU idle, 200 followers %", s["server_cpu_idle_with_200_followers_pct"], d["server_cpu_idle_with_200_followers_pct"], "%.2f"),
    ("followers still open", s["followers_still_open"], d["followers_still_open"], "%d"),
    ("list at 1,000 ms", s["list_1000_ms_median"], d["list_1000_ms_median"], "%.1f"),
]
print("| load | strata daemon | dockerd |")
print("|---|---|---|")
for name, a, b, f in rows:
    print(f"| {name} | {f % a} | {f % b} |")
PY
