//! Manifests, indexes and image configs as a registry or an archive sends them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use layerstore::spec;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<spec::Manifest>(data);
    let _ = serde_json::from_slice::<spec::Index>(data);
    let _ = serde_json::from_slice::<spec::Versioned>(data);
    let _ = serde_json::from_slice::<spec::ImageConfig>(data);
    let _ = serde_json::from_slice::<Vec<spec::DockerArchiveEntry>>(data);
});
