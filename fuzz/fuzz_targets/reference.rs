//! Image references (`registry/repo:tag@sha256:...`) and platforms (`os/arch/variant`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = registry::reference::Reference::parse(text) {
        // What was accepted, written out in full, reads back as the same reference.
        let mut full = format!("{}/{}", r.registry, r.repository);
        if let Some(t) = &r.tag {
            full.push(':');
            full.push_str(t);
        }
        if let Some(d) = &r.digest {
            full.push('@');
            full.push_str(d);
        }
        let again = registry::reference::Reference::parse(&full).expect("a full reference reads back");
        assert_eq!(again, r, "{text:?} -> {full:?}");
    }
    let _ = layerstore::spec::Platform::parse(text);
});
