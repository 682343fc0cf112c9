//! The Python `docker` SDK (7.x, in the venv `scripts/test.sh` makes) drives `strata
//! daemon` through its high- and low-level APIs: every test file of `cli/tests/sdk/`.

mod common;

use common::{fixture, Strata};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn the_python_docker_sdk_drives_the_daemon() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    let has_sdk = python.is_file()
        && Command::new(&python)
            .args(["-c", "import docker, pytest"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        has_sdk,
        "no venv with the docker SDK and pytest at {}: run the README's test command (scripts/test.sh), which makes it",
        python.display()
    );
    let s = Strata::with_driver("overlay2");
    let sock = s.dir.path().join("strata.sock");
    let mut daemon = s
        .cmd(&["daemon", "-H", &format!("unix://{}", sock.display())])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if UnixStream::connect(&sock).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk"))
        .env("STRATA_HOST", format!("unix://{}", sock.display()))
        .env("STRATA_FIXTURE", fixture("images/busybox-wh.docker.tar"))
        .env("STRATA_API_VERSION", daemon::API_VERSION)
        .output()
        .unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    // The summary ("N passed") in the test's output.
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "pytest failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.assert_fsck_ok();
}
