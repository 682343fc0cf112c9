//! Terminal resize and what a container made its stdin.

use super::*;

/// Attack: a container points its stdin at a device it was given read-only, then asks
/// the daemon to resize its terminal. The daemon (outside the container's device cgroup)
/// must not open that node: resize opens only a pseudo-terminal. Watched from the host
/// with inotify on the container's node; without the check the daemon's read-write open
/// shows up as an IN_OPEN event.
#[test]
fn resize_never_opens_what_a_container_made_its_stdin() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    s.ok(&[
        "run",
        "-d",
        "--name",
        "resz",
        "--device",
        "/dev/null:/dev/target:r",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "exec 0</dev/target; exec /bin/busybox sleep 60",
    ]);
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "resz"])).unwrap();
    let pid = v[0]["State"]["Pid"].as_u64().unwrap();
    // Until the container's own open is done: its fd 0 is the node.
    let fd0 = format!("/proc/{pid}/fd/0");
    for _ in 0..500 {
        if std::fs::read_link(&fd0).is_ok_and(|l| l == Path::new("/dev/target")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_link(&fd0).unwrap(), Path::new("/dev/target"));
    let node = std::ffi::CString::new(format!("/proc/{pid}/root/dev/target")).unwrap();
    // SAFETY: plain syscalls on a descriptor this test owns and a valid C string.
    let ino = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(ino >= 0);
    let wd = unsafe { libc::inotify_add_watch(ino, node.as_ptr(), libc::IN_OPEN) };
    assert!(
        wd >= 0,
        "watch {node:?}: {}",
        std::io::Error::last_os_error()
    );
    let (st, body) = d.request("POST", "/containers/resz/resize?h=20&w=80", b"");
    assert!(st == 200 || st == 409, "{st} {body}");
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = [0u8; 4096];
    // SAFETY: reading into a buffer of the given size.
    let n = unsafe { libc::read(ino, buf.as_mut_ptr().cast(), buf.len()) };
    let err = std::io::Error::last_os_error();
    unsafe { libc::close(ino) };
    assert!(
        n < 0 && err.raw_os_error() == Some(libc::EAGAIN),
        "the daemon opened the container's device node during resize ({n} bytes of events)"
    );
    s.ok(&["rm", "-f", "resz"]);
}
