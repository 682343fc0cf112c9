#!/usr/bin/env bash
# Builds strata and runs the main job on the bundled fixture image: load it, verify it,
# mount a container's rootfs, show what the image's layers did, save it back out.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
root=$(mktemp -d /tmp/strata-demo.XXXXXX)
s() { ./target/release/strata --data-root "$root" "$@"; }
set -x
s load -i fixtures/images/busybox-wh.docker.tar
s images
s history busybox-wh:1
s info
c=$(s create --name demo busybox-wh:1)
rootfs=$(s mount demo)
ls -l "$rootfs/data/keep"
echo hello > "$rootfs/hello"
rm "$rootfs/data/keep/k1"
s diff demo
s umount demo
s save --format oci -o "$root/export-oci" busybox-wh:1
s fsck
s system df
s rm demo
s rmi busybox-wh:1
set +x
rm -rf "$root"
echo "demo done (container $c)"
