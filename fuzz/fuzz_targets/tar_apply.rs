//! The layer applier over a scratch directory: any byte stream as a layer tar (headers,
//! PAX records, GNU long names, sparse maps, whiteouts, links). It must never panic,
//! never write outside the scratch directory, and never take more than its limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("scratch dir");
    let root = dir.path().join("layer");
    std::fs::create_dir(&root).expect("layer dir");
    // A sibling the layer must never reach.
    std::fs::write(dir.path().join("outside"), b"x").expect("outside file");
    let limits = layerstore::tarfs::Limits {
        max_layer_bytes: 64 << 20,
        max_entries: 10_000,
        max_header_record: 1 << 16,
        max_layers: 10,
    };
    let target = layerstore::tarfs::Target {
        root: &root,
        lowers: &[],
        gate: None,
        format: &drivers::RemoveWhiteouts,
        split_to: None,
    };
    let _ = layerstore::tarfs::apply_layer_onto(data, &target, &limits);
    assert_eq!(std::fs::read(dir.path().join("outside")).expect("outside file"), b"x");
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("scratch").flatten().map(|e| e.file_name()).collect();
    assert!(names.len() == 2, "something was made beside the layer: {names:?}");
});
