#!/usr/bin/env bash
# Builds strata and runs the main job on the bundled fixture image: the storage benchmark,
# which loads it, creates and mounts a container, runs it, writes and reads files, commits,
# diffs, removes and migrates, on every driver that works here, all on one fresh
# filesystem, and prints a table (also bench.json and bench.html in target/). Root only
# (it makes a loop-mounted filesystem and runs containers).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mkfs.btrfs >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q btrfs-progs fuse3 >/dev/null 2>&1 || true
fi
cargo build --release -q
./target/release/strata bench \
  --image fixtures/images/busybox-wh.docker.tar \
  --runs "${RUNS:-3}" \
  --json target/bench.json \
  --html target/bench.html
echo "JSON: target/bench.json   chart: target/bench.html"
