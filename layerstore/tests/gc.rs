//! Garbage collection of driver layers no record names (what a killed command leaves).

use layerstore::{Store, StoreOptions};

#[test]
fn gc_removes_an_orphan_chain_parents_after_children() {
    for driver in ["vfs", "overlay2", "aufs"] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions {
            data_root: dir.path().join("root"),
            driver: Some(driver.into()),
            ..Default::default()
        })
        .unwrap();
        // A chain as a killed parallel load leaves it: every layer created, none recorded.
        let mut parent: Option<String> = None;
        for i in 0..6 {
            let id = format!("{i:064x}");
            store
                .driver
                .create(&id, parent.as_deref(), drivers::LayerKind::ReadOnly)
                .unwrap();
            parent = Some(id);
        }
        assert_eq!(store.driver.list().unwrap().len(), 6);
        store.gc().unwrap();
        assert_eq!(
            store.driver.list().unwrap(),
            Vec::<String>::new(),
            "{driver}: every orphan is removed whatever order the driver lists them in"
        );
    }
}
