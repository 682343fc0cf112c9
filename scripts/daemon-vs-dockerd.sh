#!/usr/bin/env bash
# `docker run --rm IMAGE true` through strata's daemon and through dockerd, same client,
# same machine, same image (the bundled busybox fixture), one after the other. Prints the
# median of N runs for each and the ratio. Root only; dockerd must be running (scripts/test.sh
# starts one) and strata built in release mode (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-20}"
client=/usr/bin/docker
[ -x "$client" ] || client=$(command -v docker)
work=$(mktemp -d /var/tmp/strata-vs-dockerd.XXXXXX)
trap 'kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
./target/release/strata --data-root "$work/root" daemon -H "unix://$work/strata.sock" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$work/strata.sock" ] && break; sleep 0.05; done
image=fixtures/images/busybox-wh.docker.tar
DOCKER_HOST="unix://$work/strata.sock" "$client" load -i "$image" >/dev/null
"$client" load -i "$image" >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_runs() {
  local host="$1"
  for _ in $(seq "$N"); do
    local t0 t1
    t0=$(date +%s%N)
    DOCKER_HOST="$host" "$client" run --rm busybox-wh:1 /bin/busybox true
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | median
}
# One warm-up run each.
DOCKER_HOST="unix://$work/strata.sock" "$client" run --rm busybox-wh:1 /bin/busybox true
"$client" run --rm --network none busybox-wh:1 /bin/busybox true
strata_us=$(time_runs "unix://$work/strata.sock")
dockerd_us=$(time_runs "unix:///var/run/docker.sock")
echo "docker run --rm busybox-wh:1 true, median of $N ($("$client" --version)):"
echo "  strata daemon: $((strata_us / 1000)) ms"
echo "  dockerd:       $((dockerd_us / 1000)) ms"
awk -v a="$dockerd_us" -v b="$strata_us" 'BEGIN { printf "  strata is %.1fx faster\n", a / b }'
