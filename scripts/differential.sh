#!/usr/bin/env bash
# Long differential run of layer application against umoci (issue 13): N generated layer
# stacks (default 3000), each written as an OCI layout, unpacked by `umoci unpack` and
# loaded and mounted by every driver available here, compared entry by entry.
#   bash scripts/differential.sh [N] [FIRST_SEED]
# Needs root, umoci (apt-get install umoci), and for btrfs the btrfs kernel module.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-3000}"
first="${2:-1}"
command -v umoci >/dev/null || { echo "umoci is not installed: apt-get install umoci" >&2; exit 2; }
cargo build --release -p strata-cli >/dev/null
STRATA_DIFF_SEEDS="$n" STRATA_DIFF_FIRST="$first" \
  cargo test --release -p strata-layerstore --test differential -- --nocapture
