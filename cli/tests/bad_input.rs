//! Bad input: a clear one-line error, exit 125, nothing half-stored, nothing written
//! outside the data root, and a store that `fsck` still passes.

mod common;

use common::{fixture, sh, Strata};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn layout_copy(s: &Strata) -> PathBuf {
    let work = s.dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    sh(Command::new("tar")
        .arg("-xf")
        .arg(fixture("images/busybox-wh.oci.tar"))
        .arg("-C")
        .arg(&work));
    work.join("busybox-wh.oci")
}

fn largest_blob(layout: &Path) -> PathBuf {
    let mut blobs: Vec<_> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blobs.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    blobs[0].clone()
}

fn assert_nothing_loaded(s: &Strata) {
    assert!(
        s.images_json().is_empty(),
        "a failed load must not list an image"
    );
    s.assert_fsck_ok();
}

fn one_line(err: &str) -> &str {
    let first = err.lines().next().unwrap_or("");
    assert!(first.starts_with("strata: "), "{err}");
    first
}

#[test]
fn corrupted_layer_blob_names_both_digests() {
    let s = Strata::new();
    let layout = layout_copy(&s);
    let blob = largest_blob(&layout);
    let mut data = fs::read(&blob).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&blob, &data).unwrap();
    let err = s.fails(&["load", "-i", layout.to_str().unwrap()], 125);
    let line = one_line(&err);
    let name = blob.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        line.contains("digest mismatch")
            && line.contains(&name)
            && line.matches("sha256:").count() >= 2,
        "{line}"
    );
    assert_nothing_loaded(&s);
}

#[test]
fn truncated_archive_is_refused() {
    let s = Strata::new();
    let data = fs::read(fixture("images/busybox-wh.docker.tar")).unwrap();
    let cut = s.dir.path().join("cut.tar");
    fs::write(&cut, &data[..data.len() * 2 / 3]).unwrap();
    let err = s.fails(&["load", "-i", cut.to_str().unwrap()], 125);
    one_line(&err);
    assert_nothing_loaded(&s);
    let gz = fs::read(fixture("images/busybox-wh.docker.tar.gz")).unwrap();
    fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    s.fails(&["load", "-i", cut.to_str().unwrap()], 125);
    assert_nothing_loaded(&s);
}

#[test]
fn missing_blob_invalid_json_and_media_type() {
    let s = Strata::new();
    let layout = layout_copy(&s);
    fs::remove_file(largest_blob(&layout)).unwrap();
    let err = s.fails(&["load", "-i", layout.to_str().unwrap()], 125);
    assert!(one_line(&err).contains("missing"), "{err}");
    assert_nothing_loaded(&s);

    let t = Strata::new();
    let layout = layout_copy(&t);
    fs::write(layout.join("index.json"), b"{not json").unwrap();
    let err = t.fails(&["load", "-i", layout.to_str().unwrap()], 125);
    assert!(
        one_line(&err).contains("invalid JSON in index.json"),
        "{err}"
    );
    assert_nothing_loaded(&t);

    // A manifest whose layer type is not an image layer (its digest is then rewritten so
    // only the media type is wrong).
    let u = Strata::new();
    let layout = layout_copy(&u);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let mpath = layout.join("blobs/sha256").join(&mdigest);
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
    m["layers"][0]["mediaType"] = "application/vnd.example.not-a-layer".into();
    let bytes = serde_json::to_vec(&m).unwrap();
    let hex = layerstore::Digest::of(&bytes).hex().to_string();
    fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = format!("sha256:{hex}").into();
    index["manifests"][0]["size"] = bytes.len().into();
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let err = u.fails(&["load", "-i", layout.to_str().unwrap()], 125);
    assert!(one_line(&err).contains("unsupported media type"), "{err}");
    assert_nothing_loaded(&u);
}

#[test]
fn path_escapes_write_nothing_outside() {
    let s = Strata::new();
    let evil = s.dir.path().join("evil.tar");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(4);
    h.set_mode(0o644);
    h.as_old_mut().name[..16].copy_from_slice(b"../../../escaped");
    h.set_cksum();
    let mut data = h.as_bytes().to_vec();
    data.extend_from_slice(b"evil");
    data.resize(data.len() + 508 + 1024, 0);
    fs::File::create(&evil).unwrap().write_all(&data).unwrap();
    let err = s.fails(&["import", evil.to_str().unwrap(), "evil"], 125);
    assert!(one_line(&err).contains("escapes"), "{err}");
    assert!(!s.dir.path().join("escaped").exists() && !Path::new("/escaped").exists());
    assert_nothing_loaded(&s);
    // An archive member that climbs out.
    let err = s.fails(&["load", "-i", evil.to_str().unwrap()], 125);
    assert!(one_line(&err).contains("escapes"), "{err}");
    assert_nothing_loaded(&s);
}

#[test]
fn fixtures_that_must_be_refused() {
    let s = Strata::new();
    for (f, want) in [
        ("archives/gcr-no_manifest.tar", "legacy docker archive"),
        ("archives/gcr-null_manifest.tar", "not an image archive"),
        // Its config was edited after Docker wrote it: the name says one digest, the
        // content hashes to another.
        (
            "archives/gcr-source_image_with_empty_layer_history.tar",
            "digest mismatch",
        ),
    ] {
        let err = s.fails(&["load", "-i", fixture(f).to_str().unwrap()], 125);
        assert!(one_line(&err).contains(want), "{f}: {err}");
    }
    let err = s.fails(&["load", "-i", "/nonexistent/file.tar"], 125);
    one_line(&err);
    assert_nothing_loaded(&s);
}

#[test]
fn fsck_finds_a_corrupted_blob_and_repair_drops_the_image() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    s.assert_fsck_ok();
    let blobs = s.root().join("blobs/sha256");
    let victim = largest_blob(&s.root().join(""));
    let _ = &blobs;
    let mut data = fs::read(&victim).unwrap();
    data[100] ^= 1;
    fs::write(&victim, &data).unwrap();
    let o = s.run(&["fsck"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("is corrupt"), "{out}");
    s.ok(&["fsck", "--repair"]);
    s.assert_fsck_ok();
    assert!(s.images_json().is_empty());
}

#[test]
fn interrupted_load_leaves_a_store_fsck_passes() {
    // Kill a load part way: whatever it wrote is invisible and fsck passes.
    let src = fixture("archives/dive-test-docker-image.tar");
    let mut interrupted = 0;
    for delay_ms in [2u64, 5, 10, 20, 40] {
        let s = Strata::new();
        let mut child = s
            .cmd(&["load", "-i", src.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.code().is_none() {
            interrupted += 1;
            assert!(
                s.images_json().is_empty(),
                "a killed load must not list its image"
            );
        } else {
            assert_eq!(status.code(), Some(0), "the load itself must not fail");
        }
        s.assert_fsck_ok();
        // Loading again completes and cleans what the killed run left.
        s.load("archives/dive-test-docker-image.tar");
        s.ok(&["system", "prune"]);
        s.assert_fsck_ok();
        let notes = s.ok(&["fsck"]);
        assert!(!notes.contains("belongs to nothing"), "{notes}");
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} loads were killed mid-way"
    );
}

/// Rewrites blob `name` of `layout` with `f` applied to its JSON, returning the new digest.
fn rewrite_json(
    layout: &Path,
    hex: &str,
    f: impl FnOnce(&mut serde_json::Value),
) -> (String, usize) {
    let path = layout.join("blobs/sha256").join(hex);
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    let bytes = serde_json::to_vec(&v).unwrap();
    let new = layerstore::Digest::of(&bytes).hex().to_string();
    fs::write(layout.join("blobs/sha256").join(&new), &bytes).unwrap();
    (new, bytes.len())
}

#[test]
fn wrong_diff_id_in_the_middle_of_a_chain_leaves_nothing() {
    for driver in common::drivers_here() {
        let s = Strata::with_driver(driver);
        let layout = layout_copy(&s);
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let mhex = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&mhex)).unwrap())
                .unwrap();
        let chex = manifest["config"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        // Layer 4's DiffID claims the content of layer 5.
        let (cnew, clen) = rewrite_json(&layout, &chex, |c| {
            let five = c["rootfs"]["diff_ids"][4].clone();
            c["rootfs"]["diff_ids"][3] = five;
        });
        let (mnew, mlen) = rewrite_json(&layout, &mhex, |m| {
            m["config"]["digest"] = format!("sha256:{cnew}").into();
            m["config"]["size"] = clen.into();
        });
        let mut index = index;
        index["manifests"][0]["digest"] = format!("sha256:{mnew}").into();
        index["manifests"][0]["size"] = mlen.into();
        fs::write(
            layout.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        let err = s.fails(&["load", "-i", layout.to_str().unwrap()], 125);
        let line = one_line(&err);
        assert!(
            line.contains("digest mismatch") && line.contains("layer 4/7"),
            "{driver}: {line}"
        );
        assert_nothing_loaded(&s);
        let notes = s.ok(&["fsck"]);
        assert!(
            !notes.contains("belongs to nothing"),
            "{driver}: half-applied layers were left: {notes}"
        );
        assert_eq!(
            fs::read_dir(s.root().join("layers")).unwrap().count(),
            0,
            "{driver}"
        );
    }
}
