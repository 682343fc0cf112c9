//! Differential test of layer application: random layer stacks (see `differential/gen.rs`)
//! written as OCI layouts, unpacked by `umoci unpack` and loaded and mounted by every
//! driver strata has here, compared entry by entry (`differential/compare.rs`).
//!
//! `cargo test` runs a fixed set of seeds; `scripts/differential.sh N` runs N more
//! (`STRATA_DIFF_SEEDS`, `STRATA_DIFF_FIRST`). A seed that fails prints its layers, so
//! it can be turned into a named regression test.

mod common;
#[path = "differential/compare.rs"]
mod compare;
#[path = "differential/gen.rs"]
mod gen;
#[path = "differential/layout.rs"]
mod layout;

use layerstore::import::{load, LoadOptions};
use layerstore::{Store, StoreOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Seeds `cargo test` runs.
const CI_SEEDS: u64 = 150;

fn umoci() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("umoci"))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        fsutil::testing::skip("umoci is not installed (scripts/test.sh installs it)");
    }
    found
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Subject {
    name: &'static str,
    store: Store,
    _home: common::Home,
}

fn subjects() -> Vec<Subject> {
    let mut out = Vec::new();
    for name in ["overlay2", "aufs", "vfs", "btrfs"] {
        let Some(home) = common::home(name) else {
            continue;
        };
        let opts = StoreOptions {
            data_root: home.path().join("root"),
            driver: Some(name.to_string()),
            driver_opts: Default::default(),
            read_only: false,
            limits: Default::default(),
        };
        match Store::open(&opts) {
            Ok(store) => out.push(Subject {
                name,
                store,
                _home: home,
            }),
            Err(e) => fsutil::testing::skip(&format!("the {name} driver cannot run here: {e}")),
        }
    }
    out
}

/// What strata's driver shows for the image at `layout`, as a manifest, or the error.
fn strata_rootfs(s: &Subject, layout: &Path, now: i64) -> Result<compare::Manifest, String> {
    let loaded = load(&s.store, layout, &LoadOptions::default()).map_err(|e| e.to_string())?;
    let id = loaded[0].id.clone();
    let result = (|| {
        let img = s
            .store
            .resolve_image(&id.to_string())
            .map_err(|e| e.to_string())?;
        let Some(top) = img.layers.last() else {
            return Ok(Default::default());
        };
        let layer = s.store.ensure_layer(top).map_err(|e| e.to_string())?;
        let root = s.store.driver.get(&layer).map_err(|e| e.to_string())?;
        let m = compare::manifest(&root, now);
        s.store.driver.put(&layer).map_err(|e| e.to_string())?;
        Ok(m)
    })();
    s.store
        .rmi(&id.to_string(), true)
        .map_err(|e| e.to_string())?;
    s.store.gc().map_err(|e| e.to_string())?;
    result
}

fn umoci_rootfs(
    umoci: &Path,
    layout: &Path,
    bundle: &Path,
    now: i64,
) -> Result<compare::Manifest, String> {
    let out = Command::new(umoci)
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:t", layout.display()))
        .arg(bundle)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(compare::manifest(&bundle.join("rootfs"), now))
}

fn describe(layers: &[Vec<gen::Entry>]) -> String {
    let mut s = String::new();
    for (i, l) in layers.iter().enumerate() {
        s += &format!("  layer {}:\n", i + 1);
        for e in l {
            s += &format!(
                "    {:?} {:?} mode={:o} uid={} gid={} mtime={} xattrs={:?}\n",
                e.path, e.kind, e.meta.mode, e.meta.uid, e.meta.gid, e.meta.mtime, e.meta.xattrs
            );
        }
    }
    s
}

/// Runs one seed against every subject; the failures, described.
fn check_seed(
    seed: u64,
    umoci: &Path,
    subjects: &[Subject],
    tmp: &Path,
    now: i64,
    refused: &mut u64,
) -> Vec<String> {
    let layers = gen::stack(seed);
    let layout = tmp.join(format!("layout-{seed}"));
    layout::write(&layout, &layers);
    let expected = umoci_rootfs(umoci, &layout, &tmp.join(format!("bundle-{seed}")), now);
    if let Err(e) = &expected {
        *refused += 1;
        if std::env::var_os("STRATA_DIFF_VERBOSE").is_some() {
            eprintln!("seed {seed}: umoci refuses: {e}");
        }
    }
    let mut failures = Vec::new();
    for s in subjects {
        let got = strata_rootfs(s, &layout, now);
        let problem = match (&expected, &got) {
            (Ok(a), Ok(b)) => {
                let d = compare::differences(a, b);
                (!d.is_empty()).then(|| d.join("\n"))
            }
            (Err(_), Err(_)) => None, // both refuse the stack
            (Ok(_), Err(e)) => Some(format!("strata refused what umoci unpacks: {e}")),
            (Err(e), Ok(_)) => Some(format!("umoci refused ({e}) what strata loads")),
        };
        if let Some(p) = problem {
            failures.push(format!(
                "seed {seed}, {}:\n{p}\n{}",
                s.name,
                describe(&layers)
            ));
        }
    }
    if let Some(keep) = std::env::var_os("STRATA_DIFF_KEEP") {
        // For a closer look: the layout and umoci's bundle stay in $STRATA_DIFF_KEEP.
        let keep = Path::new(&keep);
        let _ = std::fs::create_dir_all(keep);
        let _ = std::fs::rename(&layout, keep.join(format!("layout-{seed}")));
        let _ = std::fs::rename(
            tmp.join(format!("bundle-{seed}")),
            keep.join(format!("bundle-{seed}")),
        );
    }
    let _ = std::fs::remove_dir_all(&layout);
    let _ = std::fs::remove_dir_all(tmp.join(format!("bundle-{seed}")));
    failures
}

#[test]
fn every_driver_unpacks_generated_stacks_as_umoci_does() {
    let Some(umoci) = umoci() else { return };
    let subjects = subjects();
    assert!(!subjects.is_empty(), "no driver can run here");
    let tmp = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 1;
    let first = env_u64("STRATA_DIFF_FIRST", 1);
    let count = env_u64("STRATA_DIFF_SEEDS", CI_SEEDS);
    let mut failures = Vec::new();
    let mut refused = 0;
    for seed in first..first + count {
        failures.extend(check_seed(
            seed,
            &umoci,
            &subjects,
            tmp.path(),
            now,
            &mut refused,
        ));
    }
    let names: Vec<&str> = subjects.iter().map(|s| s.name).collect();
    eprintln!(
        "differential: seeds {first}..{} on {names:?}: {} refused by umoci (and strata), {} disagreements",
        first + count,
        refused,
        failures.len()
    );
    assert!(
        refused * 3 < count.max(3),
        "most generated stacks should be valid ({refused} of {count} refused)"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
