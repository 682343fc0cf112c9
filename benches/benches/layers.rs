//! criterion benches for the hot library paths: hashing, applying a layer, writing a
//! layer from a tree's changes, and copying a tree (the vfs driver's create).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drivers::fsutil::{copy_tree, CopyOptions};
use drivers::RemoveWhiteouts;
use layerstore::tarfs::{apply_layer, write_layer};
use std::io::Read;
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join(rel)
}

/// The first (busybox) layer of the dive test image, uncompressed: 415 entries, 392 hardlinks.
fn busybox_layer() -> Vec<u8> {
    let f = std::fs::File::open(fixture("archives/dive-test-docker-image.tar")).unwrap();
    let mut ar = tar::Archive::new(f);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().to_string();
        if p.starts_with("28cfe03618aa") && p.ends_with("layer.tar") {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return v;
        }
    }
    panic!("layer not found in fixture");
}

fn benches(c: &mut Criterion) {
    let layer = busybox_layer();
    let mut g = c.benchmark_group("layer");
    g.throughput(Throughput::Bytes(layer.len() as u64));
    g.bench_function("sha256", |b| b.iter(|| layerstore::Digest::of(&layer)));
    g.bench_function("apply", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().unwrap(),
            |dir| {
                apply_layer(&layer[..], dir.path(), &RemoveWhiteouts).unwrap();
                dir
            },
        )
    });
    let src = tempfile::tempdir().unwrap();
    apply_layer(&layer[..], src.path(), &RemoveWhiteouts).unwrap();
    let changes = drivers::changes::tree_changes(None, src.path()).unwrap();
    g.bench_function("diff_and_write", |b| {
        b.iter(|| write_layer(src.path(), &changes, std::io::sink()).unwrap())
    });
    g.bench_function("tree_changes", |b| {
        b.iter(|| drivers::changes::tree_changes(Some(src.path()), src.path()).unwrap())
    });
    g.bench_function("copy_tree", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().unwrap(),
            |dir| {
                copy_tree(src.path(), dir.path(), &CopyOptions::new(true)).unwrap();
                dir
            },
        )
    });
    g.finish();
}

criterion_group!(layers, benches);
criterion_main!(layers);
