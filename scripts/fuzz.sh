#!/usr/bin/env bash
# Runs every cargo-fuzz target for a set time (default 600 s each, two at a time on the
# two cores here): `bash scripts/fuzz.sh [SECONDS] [TARGET...]`. Needs the nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Crashes land in
# fuzz/artifacts/TARGET/; each one found becomes a named regression test.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
cargo +nightly fuzz build "${targets[@]/#/}" >/dev/null 2>&1 || cargo +nightly fuzz build
mkdir -p logs
run() {
  local t=$1
  mkdir -p "corpus/$t"
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    >"logs/$t.log" 2>&1 && echo "$t: no crash in ${secs}s ($(grep -o 'stat::number_of_executed_units: [0-9]*' "logs/$t.log" | tail -1))" \
    || echo "$t: FOUND A CRASH: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
}
i=0
for t in "${targets[@]}"; do
  run "$t" &
  i=$((i + 1))
  if [ $((i % 2)) -eq 0 ]; then wait; fi
done
wait
