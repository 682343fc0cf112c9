//! The store's temp area: what a crashed command left is cleared when a store opens with
//! nobody working, and never from under a store another opener already holds.

use layerstore::{Store, StoreOptions};

fn open(root: &std::path::Path) -> Store {
    Store::open(&StoreOptions {
        data_root: root.to_path_buf(),
        driver: Some("vfs".into()),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn opening_a_store_clears_leftovers_but_never_the_area_itself() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let first = open(&root);
    // A crashed command's work.
    let left = root.join("tmp").join("work-crashed");
    std::fs::create_dir_all(left.join("inside")).unwrap();
    // Another process opens the store while the first holds no lock yet: the leftovers go...
    let _second = open(&root);
    assert!(!left.exists(), "a crashed command's work was kept");
    // ...and the first can still make its own work directory and stage blobs.
    let work = first.temp_dir().unwrap();
    assert!(work.is_dir());
    let d = first
        .blobs
        .put(b"staged after another store opened", "a test blob", None)
        .unwrap();
    assert!(first.blobs.path(&d).is_file());
}
