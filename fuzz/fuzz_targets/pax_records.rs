//! PAX extended header data: the length-prefixed record parser, and the header guard
//! that follows tar framing and rewrites record values for the parser behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Read;

fuzz_target!(|data: &[u8]| {
    let _ = layerstore::tarfs::pax::parse_records(data);
    let (mut guard, _) = layerstore::tarfs::limits::HeaderGuard::new(data, 1 << 16);
    let mut out = Vec::new();
    let _ = guard.read_to_end(&mut out);
    // The guard changes no byte count.
    if out.len() == data.len() {
        assert!(out.iter().zip(data).all(|(a, b)| a == b || (*b == b'\n' && *a == b' ')));
    }
});
