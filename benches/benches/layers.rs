//! criterion benches for the hot library paths: hashing, applying a layer, writing a
//! layer from a tree's changes, and copying a tree (the vfs driver's create).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drivers::RemoveWhiteouts;
use fsutil::{copy_tree, CopyOptions};
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
criterion_main!(layers, stores, union);

/// `create` + `mount` + `umount` + `rm` of a container rootfs on overlay2 through the
/// library (no process start), and `commit` of a container that wrote 1,000 small files.
fn containers(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let opts = layerstore::StoreOptions {
        data_root: dir.path().join("root"),
        driver: Some("overlay2".into()),
        ..Default::default()
    };
    let store = layerstore::Store::open(&opts).unwrap();
    layerstore::import::load(
        &store,
        &fixture("images/busybox-wh.docker.tar"),
        &Default::default(),
    )
    .unwrap();
    let mut g = c.benchmark_group("overlay2");
    g.bench_function("create_mount_umount_rm", |b| {
        b.iter(|| {
            let ctr = store.create_container("busybox-wh:1", None).unwrap();
            store.mount_container(&ctr.id).unwrap();
            store.umount_container(&ctr.id).unwrap();
            store.remove_container(&ctr.id, false).unwrap();
        })
    });
    g.sample_size(20);
    g.bench_function("commit_1000_small_files", |b| {
        b.iter_with_setup(
            || {
                let ctr = store.create_container("busybox-wh:1", None).unwrap();
                let root = store.mount_container(&ctr.id).unwrap();
                std::fs::create_dir(root.join("many")).unwrap();
                for i in 0..1000 {
                    std::fs::write(root.join(format!("many/f{i}")), i.to_string()).unwrap();
                }
                store.umount_container(&ctr.id).unwrap();
                ctr.id
            },
            |id| {
                layerstore::commit::commit(&store, &id, &Default::default(), &|_| {}).unwrap();
                id
            },
        )
    });
    g.finish();
}

criterion_group!(stores, containers);

/// The FUSE union's copy-up (what the first write to a lower file costs): a 1 MiB file and a
/// hardlinked one (through a pseudo-link), from a lower branch into the writable one.
fn copy_up(c: &mut Criterion) {
    let mut g = c.benchmark_group("union");
    g.bench_function("copy_up_1mib", |b| {
        b.iter_with_setup(
            || {
                let t = tempfile::tempdir().unwrap();
                std::fs::create_dir_all(t.path().join("lower/d")).unwrap();
                std::fs::create_dir(t.path().join("upper")).unwrap();
                std::fs::write(t.path().join("lower/d/f"), vec![7u8; 1 << 20]).unwrap();
                std::fs::hard_link(t.path().join("lower/d/f"), t.path().join("lower/d/g")).unwrap();
                t
            },
            |t| {
                let u = unionfs::Union::new(t.path().join("upper"), vec![t.path().join("lower")]);
                u.copy_up(Path::new("d/f")).unwrap();
                t
            },
        )
    });
    g.finish();
}

criterion_group!(union, copy_up);
