//! The crash model: loads return before their data is flushed; a power cut before the
//! flush is simulated by damaging the unflushed files and changing the boot id, and the
//! next command must find it and repair it (or say the image is damaged), never serve a
//! broken rootfs.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const BB: &str = "/bin/busybox";

/// Runs `args` in "boot" `boot`, with the background flush off (so the writes stay
/// unflushed, as at a power cut).
fn in_boot(s: &Strata, boot: &str, args: &[&str]) -> std::process::Output {
    s.cmd(args)
        .env("STRATA_TEST_BOOT_ID", boot)
        .env("STRATA_TEST_NO_FLUSH", "1")
        .output()
        .unwrap()
}

fn ok_in(s: &Strata, boot: &str, args: &[&str]) -> String {
    let o = in_boot(s, boot, args);
    assert!(
        o.status.success(),
        "strata {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The overlay2 layer directory holding `rel` (the lowest one that has it).
fn layer_file(s: &Strata, rel: &str) -> PathBuf {
    let home = s.root().join("overlay2");
    let mut hits: Vec<PathBuf> = std::fs::read_dir(&home)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("diff").join(rel))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    hits.sort();
    hits.into_iter()
        .next()
        .unwrap_or_else(|| panic!("no layer holds {rel}"))
}

fn journal_lines(root: &Path) -> usize {
    std::fs::read_to_string(root.join("unflushed.jsonl"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Loading `archive` again in the new boot brings the damaged image back whole.
fn loads_again(s: &Strata, archive: &Path) {
    ok_in(s, "boot-b", &["load", "-i", archive.to_str().unwrap()]);
    let out = ok_in(
        s,
        "boot-b",
        &["run", "--rm", "busybox-wh:1", BB, "echo", "back"],
    );
    assert_eq!(out, "back\n");
    let fsck = ok_in(s, "boot-b", &["fsck"]);
    assert!(fsck.contains(": ok"), "{fsck}");
}

#[test]
fn a_power_cut_before_the_flush_is_repaired_from_the_kept_blobs() {
    let s = Strata::with_driver("overlay2");
    let archive = fixture("images/busybox-wh.oci.tar");
    ok_in(&s, "boot-a", &["load", "-i", archive.to_str().unwrap()]);
    assert!(journal_lines(&s.root()) > 0, "the load journaled nothing");
    // What a power cut does to files whose data never reached the disk: emptied, gone.
    let busybox = layer_file(&s, "bin/busybox");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&busybox)
        .unwrap()
        .set_len(0)
        .unwrap();
    std::fs::remove_file(layer_file(&s, "etc/passwd")).unwrap();
    // Same boot: nothing is checked (the page cache still holds the data), so the
    // damage shows; this is what the journal protects against after a reboot.
    // After the reboot: the next command repairs before anything uses the layers.
    let out = ok_in(
        &s,
        "boot-b",
        &[
            "run",
            "--rm",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            "head -1 /etc/passwd; ls /data/keep",
        ],
    );
    assert_eq!(
        out,
        "root:x:0:0:root:/root:/bin/sh\nhard-dst\nhard-src\nk1\nk4\nk5\n"
    );
    assert!(std::fs::metadata(&busybox).unwrap().len() > 100_000);
    // The old boot's lines are gone once repaired; fsck agrees.
    let left = std::fs::read_to_string(s.root().join("unflushed.jsonl")).unwrap_or_default();
    assert!(!left.contains("boot-a"), "{left}");
    let fsck = ok_in(&s, "boot-b", &["fsck"]);
    assert!(fsck.contains(": ok"), "{fsck}");
}

#[test]
fn a_layer_whose_source_was_lost_too_is_reported_damaged_until_loaded_again() {
    let s = Strata::with_driver("overlay2");
    let archive = fixture("images/busybox-wh.oci.tar");
    ok_in(&s, "boot-a", &["load", "-i", archive.to_str().unwrap()]);
    let busybox = layer_file(&s, "bin/busybox");
    std::fs::remove_file(&busybox).unwrap();
    // Its blob (the largest) was not flushed either: the power cut emptied it.
    let blobs = s.root().join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    std::fs::write(&biggest, b"").unwrap();
    let o = in_boot(&s, "boot-b", &["run", "--rm", "busybox-wh:1", BB, "true"]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("lost in an unclean shutdown") && err.contains("load or pull the image again"),
        "{err}"
    );
    let fsck = in_boot(&s, "boot-b", &["fsck"]);
    assert!(!fsck.status.success());
    assert!(String::from_utf8_lossy(&fsck.stdout).contains("unclean shutdown"));
    loads_again(&s, &archive);
}

#[test]
fn the_background_flush_empties_the_journal() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.oci.tar");
    for _ in 0..500 {
        if journal_lines(&s.root()) == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(journal_lines(&s.root()), 0, "nothing flushed the load");
    s.assert_fsck_ok();
}

#[test]
fn layers_kept_as_files_are_checked_after_a_power_cut() {
    // Whole files: checked against their DiffIDs and kept, nothing applied again.
    let s = Strata::with_driver("overlay2");
    let archive = fixture("images/busybox-wh.docker.tar");
    ok_in(&s, "boot-a", &["load", "-i", archive.to_str().unwrap()]);
    let k4 = layer_file(&s, "data/keep/k4");
    let before = std::fs::metadata(&k4).unwrap().ino();
    let out = ok_in(
        &s,
        "boot-b",
        &["run", "--rm", "busybox-wh:1", BB, "cat", "/data/keep/k4"],
    );
    assert_eq!(out, "keep 4\nchanged\n");
    assert_eq!(std::fs::metadata(&k4).unwrap().ino(), before, "re-applied");
    // Emptied files with no blob to apply them from: the image is damaged, and says so.
    let s = Strata::with_driver("overlay2");
    ok_in(&s, "boot-a", &["load", "-i", archive.to_str().unwrap()]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(layer_file(&s, "bin/busybox"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let o = in_boot(&s, "boot-b", &["run", "--rm", "busybox-wh:1", BB, "true"]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("lost in an unclean shutdown"), "{err}");
    let o = in_boot(&s, "boot-b", &["save", "-o", "/dev/null", "busybox-wh:1"]);
    assert!(!o.status.success());
    loads_again(&s, &archive);
}

#[test]
fn an_image_whose_config_was_lost_is_removed_with_its_names() {
    let s = Strata::with_driver("overlay2");
    let archive = fixture("images/busybox-wh.docker.tar");
    ok_in(&s, "boot-a", &["load", "-i", archive.to_str().unwrap()]);
    // (Still in the load's boot: a command in another boot would check the writes now.)
    let listed: serde_json::Value =
        serde_json::from_str(&ok_in(&s, "boot-a", &["images", "--format", "json"])).unwrap();
    let id = listed[0]["Id"].as_str().unwrap().to_string();
    let hex = id.trim_start_matches("sha256:");
    std::fs::write(s.root().join("blobs/sha256").join(hex), b"").unwrap();
    let o = in_boot(&s, "boot-b", &["images", "--format", "json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 0, "{v}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("load or pull it again"), "{err}");
    let fsck = ok_in(&s, "boot-b", &["fsck"]);
    assert!(fsck.contains(": ok"), "{fsck}");
    // Loading it again brings it back.
    ok_in(&s, "boot-b", &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(s.images_json()[0]["Id"], id.as_str());
}
