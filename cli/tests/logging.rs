//! `--log-level` and daemon.json `log-level`: quiet by default; at info or debug, where the
//! time of a load went and which driver was chosen, on stderr (never stdout); a level
//! strata does not know is refused by name.

mod common;

use common::{fixture, Strata};

fn load(s: &Strata, extra: &[&str]) -> (String, String) {
    let img = fixture("images/busybox-wh.oci.tar");
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["load", "-i", img.to_str().unwrap()]);
    let o = s.run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn log_level_flag_and_config_show_where_time_went() {
    let s = Strata::new();
    let (out, err) = load(&s, &[]);
    assert!(out.contains("Loaded image"), "{out}");
    assert!(err.is_empty(), "quiet by default: {err}");

    let s = Strata::new();
    let (out, err) = load(&s, &["--log-level", "debug"]);
    assert!(
        out.contains("Loaded image") && !out.contains("layer applied"),
        "{out}"
    );
    assert!(
        err.contains("store opened") && err.contains("auto-detected"),
        "{err}"
    );
    assert_eq!(
        err.matches("layer applied").count(),
        7,
        "one line per layer: {err}"
    );
    assert!(err.contains("total_ms="), "{err}");

    let s = Strata::new();
    std::fs::write(
        s.dir.path().join("daemon.json"),
        br#"{"log-level": "info"}"#,
    )
    .unwrap();
    let (_, err) = load(&s, &[]);
    assert!(err.contains("loaded (blobs verified"), "{err}");
    assert!(
        !err.contains("layer applied"),
        "info leaves debug out: {err}"
    );
    // The flag beats the file.
    let (_, err) = load(&s, &["--log-level", "error"]);
    assert!(err.is_empty(), "{err}");
}

#[test]
fn an_unknown_log_level_is_refused_by_name() {
    let s = Strata::new();
    let err = s.fails(&["--log-level", "loud", "images"], 125);
    assert!(
        err.contains("\"loud\"") && err.contains("error, warn, info, debug or trace"),
        "{err}"
    );
    std::fs::write(
        s.dir.path().join("daemon.json"),
        br#"{"log-level": "chatty"}"#,
    )
    .unwrap();
    let err = s.fails(&["images"], 125);
    assert!(
        err.contains("\"chatty\"") && err.contains("daemon.json"),
        "{err}"
    );
}
