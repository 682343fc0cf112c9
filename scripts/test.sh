#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine (idempotent),
# then checks formatting and lints and runs the whole test suite. Run as root: the tests
# make device nodes, set ownership and trusted xattrs, and mount filesystems.
set -euo pipefail
cd "$(dirname "$0")/.."

packages="umoci skopeo btrfs-progs fuse3 docker-registry apache2-utils e2fsprogs docker.io docker-compose python3-venv"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=""
  for p in $packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
else
  echo "warning: not root or no apt-get: peer tools ($packages) must already be installed" >&2
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
fi

# dockerd for the `docker load` / `docker save` compatibility test (no networking needed).
if command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  nohup dockerd --iptables=false --ip6tables=false --bridge=none >/tmp/strata-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/strata-dockerd.log" >&2; tail -20 /tmp/strata-dockerd.log >&2; }
fi

# The Python docker SDK and pytest, in a venv of the project's own, for the daemon's SDK test.
if [ ! -x target/pyenv/bin/python ] || ! target/pyenv/bin/python -c 'import docker, pytest' 2>/dev/null; then
  mkdir -p target
  python3 -m venv target/pyenv
  target/pyenv/bin/pip install -q 'docker>=7,<8' pytest
fi

if [ "${STRATA_TEST_REQUIRE:-}" = all ]; then
  echo "STRATA_TEST_REQUIRE=all: a missing peer tool or kernel feature fails its test instead of skipping it"
else
  echo "tests whose peer tool or kernel feature is missing skip with a SKIPPED line (STRATA_TEST_REQUIRE=all makes them fail)"
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo's own last line may be a doc-test run
# with nothing in it).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
