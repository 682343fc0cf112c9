#!/usr/bin/env bash
# Sequential read of a 1 GiB file through strata's FUSE union (with and without FUSE
# passthrough) against the same file through kernel overlayfs, cold (caches dropped) and
# warm, on a fresh loop-mounted ext4. Root only. Prints one line per run and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p strata-cli
STRATA="$PWD/target/release/strata"
W=$(mktemp -d /var/tmp/strata-union-bench.XXXXXX)
cleanup() {
  cd /
  for m in "$W"/fs/ov "$W"/fs/fu "$W"/fs/fn; do umount "$m" 2>/dev/null || true; done
  umount "$W/fs" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
truncate -s 3G "$W/img" && mkfs.ext4 -q -F "$W/img" && mkdir "$W/fs" && mount -o loop "$W/img" "$W/fs"
cd "$W/fs"
mkdir lower upper work ov fu fn
dd if=/dev/urandom of=lower/big bs=1M count=1024 status=none
mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=work ov
"$STRATA" unionfs-serve --upper upper --lower lower fu > "$W/fu.out" 2>&1 &
"$STRATA" unionfs-serve --no-passthrough --upper upper --lower lower fn > "$W/fn.out" 2>&1 &
for _ in $(seq 50); do grep -q ready "$W/fu.out" && grep -q ready "$W/fn.out" && break; sleep 0.1; done
secs() { local t0 t1; t0=$(date +%s.%N); dd if="$1" of=/dev/null bs=1M status=none; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
declare -A cold warm
for m in ov fu fn; do
  sync; echo 3 > /proc/sys/vm/drop_caches
  cold[$m]=$(secs "$m/big")
  warm[$m]=$(secs "$m/big")
  printf '%-28s cold %6.3f s  warm %6.3f s\n' "$m" "${cold[$m]}" "${warm[$m]}"
done
printf 'FUSE union / overlayfs speed, cold: passthrough %.0f %%, no passthrough %.0f %%\n' \
  "$(echo "100 * ${cold[ov]} / ${cold[fu]}" | bc -l)" "$(echo "100 * ${cold[ov]} / ${cold[fn]}" | bc -l)"
printf 'FUSE union / overlayfs speed, warm: passthrough %.0f %%, no passthrough %.0f %%\n' \
  "$(echo "100 * ${warm[ov]} / ${warm[fu]}" | bc -l)" "$(echo "100 * ${warm[ov]} / ${warm[fn]}" | bc -l)"
