//! Attacks on the host from inside a container, each of which worked before strata set up
//! the defense it checks (issue 11), on every driver available here:
//! - a host block device opened through a node made with CAP_MKNOD (device allowlist, by
//!   eBPF program and by the v1 devices controller);
//! - a directory descriptor of the caller used to reach the host's `/` (CVE-2024-21626
//!   class), for run, start, exec and detached containers;
//! - system calls Docker's seccomp profile refuses;
//! - the exec helper's `/proc/PID/exe`, `mem`, `fd` and `root` while it waits inside the
//!   container (CVE-2019-5736 class);
//! - a write under a submount of a `:ro` bind;
//! - the caller's session (and so its terminal) shared with the container;
//! - a program, a device node and a setuid binary planted on a `--tmpfs` mount (noexec,
//!   nodev, nosuid by default, as Docker's).
//!
//! `--privileged` and `seccomp=unconfined` are checked to lift what they should, which also
//! shows each attack would succeed without its defense.

mod common;

use common::Strata;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BB: &str = "/bin/busybox";
const SECRET: &str = "HOST-DEVICE-SECRET";

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn setup(driver: &str) -> Strata {
    let s = Strata::with_driver(driver);
    s.load("images/busybox-wh.docker.tar");
    s
}

/// A loop device over a file that starts with [`SECRET`]; detached when dropped.
struct LoopDev {
    dev: String,
    image: PathBuf,
}

impl LoopDev {
    fn new(dir: &Path) -> LoopDev {
        let image = dir.join("secret.img");
        let mut data = SECRET.as_bytes().to_vec();
        data.resize(1 << 20, 0);
        std::fs::write(&image, data).unwrap();
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(o.status.success(), "losetup: {}", err(&o));
        LoopDev {
            dev: out(&o).trim().to_string(),
            image,
        }
    }

    fn numbers(&self) -> (u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&self.dev).unwrap().rdev();
        (rustix::fs::major(rdev), rustix::fs::minor(rdev))
    }

    fn content(&self) -> Vec<u8> {
        std::fs::read(&self.image).unwrap()[..SECRET.len()].to_vec()
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).output();
    }
}

#[test]
fn host_block_devices_cannot_be_opened_from_a_container() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        let lo = LoopDev::new(s.dir.path());
        let (major, minor) = lo.numbers();
        let attack = format!(
            "mknod /tmp/disk b {major} {minor} && echo made; head -c {} /tmp/disk; echo; echo OVERWRITTEN | dd of=/tmp/disk conv=notrunc 2>&1; echo ok > /dev/null && echo null-ok",
            SECRET.len()
        );
        for mode in ["bpf", "v1"] {
            let o = s
                .cmd(&["run", "--rm", "busybox-wh:1", BB, "sh", "-c", &attack])
                .env("STRATA_DEVICE_CGROUP", mode)
                .output()
                .unwrap();
            let text = out(&o) + &err(&o);
            assert!(
                text.contains("made"),
                "{driver}/{mode}: mknod is allowed (Docker allows it): {text}"
            );
            assert!(
                !text.contains(SECRET),
                "{driver}/{mode}: read a host device: {text}"
            );
            assert!(
                text.contains("Operation not permitted"),
                "{driver}/{mode}: {text}"
            );
            assert!(
                text.contains("null-ok"),
                "{driver}/{mode}: /dev/null works: {text}"
            );
            assert_eq!(
                lo.content(),
                SECRET.as_bytes(),
                "{driver}/{mode}: wrote a host device"
            );
        }
        // Asked for by number, read-only: readable, not writable.
        let rule = format!("b {major}:{minor} r");
        let o = s.run(&[
            "run",
            "--rm",
            "--device-cgroup-rule",
            &rule,
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            &attack,
        ]);
        let text = out(&o) + &err(&o);
        assert!(
            text.contains(SECRET),
            "{driver}: the rule allows reading: {text}"
        );
        assert_eq!(lo.content(), SECRET.as_bytes(), "{driver}: r is not w");
        // Passed in with --device it appears in /dev, with the access given.
        let dev = format!("{}:/dev/secret:r", lo.dev);
        let o = s.run(&[
            "run",
            "--rm",
            "--device",
            &dev,
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            &format!("head -c {} /dev/secret", SECRET.len()),
        ]);
        assert_eq!(out(&o), SECRET, "{driver}: --device: {}", err(&o));
        // --privileged lifts it (so the attack above is a real one).
        let o = s.run(&[
            "run",
            "--rm",
            "--privileged",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            &format!("head -c {} {}", SECRET.len(), lo.dev),
        ]);
        assert_eq!(
            out(&o),
            SECRET,
            "{driver}: --privileged sees host devices: {}",
            err(&o)
        );
        s.assert_fsck_ok();
    }
}

/// A command whose process has `dir` open as descriptor 7, without close-on-exec (as a
/// shell's `exec 7</dir` leaves it).
fn with_fd7(mut c: Command, dir: &Path) -> Command {
    let f = std::fs::File::open(dir).unwrap();
    // SAFETY: dup2 in the forked child before exec; the file stays open in the parent.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(f.as_raw_fd(), 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// Lists the descriptors a process of the container inherited (a child's: busybox runs
/// `ls` inside the shell's own process, with a descriptor of its own) and tries to use
/// fd 7 to write on the host. The child is given a moment first: a background job's stdin
/// is closed and reopened on /dev/null just after the fork, and a listing in between sees
/// no descriptor 0.
const FD_ATTACK: &str = "sleep 2 & p=$!; sleep 0.3; ls /proc/$p/fd | tr '\\n' ' '; echo; kill $p; echo pwned > /proc/self/fd/7/pwned && echo WROTE; ls /proc/self/fd/7/ >/dev/null 2>&1 && echo LISTED; true";

fn assert_no_leak(text: &str, what: &str, host: &Path) {
    let fds = text.lines().next().unwrap_or("").trim().to_string();
    assert_eq!(
        fds, "0 1 2",
        "{what}: the container sees descriptors {fds:?}: {text}"
    );
    assert!(
        !text.contains("WROTE") && !text.contains("LISTED"),
        "{what}: {text}"
    );
    assert!(!host.join("pwned").exists(), "{what}: wrote onto the host");
}

#[test]
fn descriptors_of_the_caller_never_reach_the_container() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        let host = s.dir.path().join("hostdir");
        std::fs::create_dir(&host).unwrap();
        // run
        let o = with_fd7(
            s.cmd(&["run", "--rm", "busybox-wh:1", BB, "sh", "-c", FD_ATTACK]),
            &host,
        )
        .output()
        .unwrap();
        assert_no_leak(&out(&o), &format!("{driver}: run"), &host);
        // create + start -a
        s.ok(&[
            "create",
            "--name",
            "c",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            FD_ATTACK,
        ]);
        let o = with_fd7(s.cmd(&["start", "-a", "c"]), &host)
            .output()
            .unwrap();
        assert_no_leak(&out(&o), &format!("{driver}: start"), &host);
        // detached, and exec into it
        let o = with_fd7(
            s.cmd(&[
                "run",
                "-d",
                "--name",
                "bg",
                "busybox-wh:1",
                BB,
                "sh",
                "-c",
                &format!("{FD_ATTACK}; sleep 30"),
            ]),
            &host,
        )
        .output()
        .unwrap();
        assert!(o.status.success(), "{driver}: {}", err(&o));
        let mut logs = String::new();
        for _ in 0..200 {
            logs = s.ok(&["logs", "bg"]);
            if !logs.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_no_leak(&logs, &format!("{driver}: run -d"), &host);
        let o = with_fd7(s.cmd(&["exec", "bg", BB, "sh", "-c", FD_ATTACK]), &host)
            .output()
            .unwrap();
        assert_no_leak(&out(&o), &format!("{driver}: exec"), &host);
        s.ok(&["rm", "-f", "bg", "c"]);
        s.assert_fsck_ok();
    }
}

/// A static program that prints its effective uid (`tests/helpers/euid.c`), in a folder of
/// its own under `dir`.
fn euid_helper(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/euid.c");
    let bin_dir = dir.join("euid-helper");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let o = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(bin_dir.join("euid"))
        .arg(&src)
        .output()
        .expect("cc (gcc) is needed to build the setuid test helper");
    assert!(o.status.success(), "cc: {}", err(&o));
    bin_dir
}

/// The static helper that tries the refused system calls (built from
/// `tests/helpers/syscalls.c` with the C compiler every Rust toolchain here has).
fn syscall_helper(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/syscalls.c");
    let bin_dir = dir.join("helpers");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("syscalls");
    let o = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("cc (gcc) is needed to build the seccomp test helper");
    assert!(o.status.success(), "cc: {}", err(&o));
    bin_dir
}

fn errnos(text: &str) -> std::collections::BTreeMap<String, i32> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn seccomp_refuses_what_dockers_profile_refuses() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        let helpers = syscall_helper(s.dir.path());
        let vol = format!("{}:/h:ro", helpers.display());
        let refused = [
            "keyctl",
            "bpf",
            "unshare_user",
            "open_by_handle_at",
            "kexec_load",
        ];
        let o = s.run(&["run", "--rm", "-v", &vol, "busybox-wh:1", "/h/syscalls"]);
        let e = errnos(&out(&o));
        assert_eq!(e.len(), refused.len(), "{driver}: {} {}", out(&o), err(&o));
        for name in refused {
            assert_eq!(
                e[name],
                libc::EPERM,
                "{driver}: {name} is refused with EPERM: {e:?}"
            );
        }
        // Unconfined, the calls that no capability guards go through: the filter did it.
        let o = s.run(&[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "-v",
            &vol,
            "busybox-wh:1",
            "/h/syscalls",
        ]);
        let e = errnos(&out(&o));
        assert_eq!(e["keyctl"], 0, "{driver}: {e:?}");
        assert_eq!(e["unshare_user"], 0, "{driver}: {e:?}");
        // Privileged: no filter and every capability, so none of them is EPERM.
        let o = s.run(&[
            "run",
            "--rm",
            "--privileged",
            "-v",
            &vol,
            "busybox-wh:1",
            "/h/syscalls",
        ]);
        let e = errnos(&out(&o));
        for name in refused {
            assert_ne!(
                e[name],
                libc::EPERM,
                "{driver}: --privileged: {name}: {e:?}"
            );
        }
        // The filter is in force (mode 2) for run and exec, and ordinary programs work.
        let o = s.run(&[
            "run", "--rm", "busybox-wh:1", BB, "sh", "-c",
            "grep Seccomp: /proc/1/status; tar cf - /etc 2>/dev/null | tar tf - | grep -c passwd; ps | wc -l >/dev/null && echo ok",
        ]);
        assert_eq!(out(&o), "Seccomp:\t2\n1\nok\n", "{driver}: {}", err(&o));
        s.ok(&[
            "run",
            "-d",
            "--name",
            "bg",
            "busybox-wh:1",
            BB,
            "sleep",
            "30",
        ]);
        let o = s.ok(&["exec", "bg", BB, "grep", "Seccomp:", "/proc/self/status"]);
        assert_eq!(o, "Seccomp:\t2\n", "{driver}: exec is filtered too");
        let o = s.run(&["exec", "bg", "/no/such"]);
        // docker exec's status for a command that is not there (run's is 127).
        assert_eq!(o.status.code(), Some(126));
        s.ok(&["rm", "-f", "bg"]);
    }
    // A profile of one's own: this one refuses mkdir with EACCES.
    let s = setup("overlay2");
    let profile = s.dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = s.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox-wh:1",
        BB,
        "mkdir",
        "/x",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(err(&o).contains("Permission denied"), "{}", err(&o));
    let e = s.fails(
        &[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=/no/such.json",
            "busybox-wh:1",
            BB,
            "true",
        ],
        125,
    );
    assert!(e.contains("/no/such.json"), "{e}");
    std::fs::write(&profile, "{not json").unwrap();
    let e = s.fails(
        &[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox-wh:1",
            BB,
            "true",
        ],
        125,
    );
    assert!(e.contains("seccomp"), "{e}");
}

#[test]
fn the_exec_helper_cannot_be_reached_from_the_container() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        s.ok(&[
            "run",
            "-d",
            "--name",
            "bg",
            "busybox-wh:1",
            BB,
            "sleep",
            "60",
        ]);
        // An exec that waits, fully set up inside the container, before it runs its command.
        let mut held = s
            .cmd(&["exec", "bg", BB, "true"])
            .env("STRATA_TEST_EXEC_PAUSE_MS", "3000")
            .spawn()
            .unwrap();
        let attack = "for p in /proc/[0-9]*; do grep -q 'Name:.strata' $p/status 2>/dev/null || continue; echo found; \
             readlink $p/exe && echo EXE; cat $p/exe > /dev/null && echo READEXE; \
             ls $p/fd/*/ >/dev/null 2>&1 && echo FD; ls $p/root/ >/dev/null 2>&1 && echo ROOT; \
             head -c 1 $p/mem >/dev/null 2>&1 && echo MEM; cat $p/environ >/dev/null 2>&1 && echo ENV; done; true";
        let mut text = String::new();
        for _ in 0..100 {
            text = s.ok(&["exec", "bg", BB, "sh", "-c", attack]);
            if text.contains("found") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            text.contains("found"),
            "{driver}: the waiting helper is visible: {text}"
        );
        for leak in ["EXE", "READEXE", "FD", "ROOT", "MEM", "ENV"] {
            assert!(
                !text.contains(leak),
                "{driver}: {leak} of the helper reachable: {text}"
            );
        }
        assert!(held.wait().unwrap().success());
        s.ok(&["rm", "-f", "bg"]);
    }
}

#[test]
fn read_only_binds_are_read_only_all_the_way_down() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        let host = s.dir.path().join("tree");
        let sub = host.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        rustix::mount::mount(
            "tmpfs",
            &sub,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        let vol = format!("{}:/t:ro", host.display());
        let o = s.run(&[
            "run", "--rm", "-v", &vol, "busybox-wh:1", BB, "sh", "-c",
            "echo x > /t/sub/written && echo WROTE-SUB; echo x > /t/written && echo WROTE-TOP; true",
        ]);
        let text = out(&o);
        let _ = rustix::mount::unmount(&sub, rustix::mount::UnmountFlags::DETACH);
        assert!(!text.contains("WROTE"), "{driver}: {text} {}", err(&o));
        assert!(
            err(&o).contains("Read-only file system"),
            "{driver}: {}",
            err(&o)
        );
        // Read-write binds stay writable below as well.
        rustix::mount::mount(
            "tmpfs",
            &sub,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        let vol = format!("{}:/t", host.display());
        let o = s.run(&[
            "run",
            "--rm",
            "-v",
            &vol,
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            "echo x > /t/sub/w && echo ok",
        ]);
        let wrote = sub.join("w").exists();
        let _ = rustix::mount::unmount(&sub, rustix::mount::UnmountFlags::DETACH);
        assert_eq!(out(&o), "ok\n", "{driver}: {}", err(&o));
        assert!(wrote);
    }
}

/// Field 6 of /proc/PID/stat: the session id as the container's pid namespace sees it
/// (0 when the session leader is outside, i.e. the caller's session).
const SESSION: &str = "echo $$ $(cut -d' ' -f6 /proc/$$/stat)";

#[test]
fn every_container_process_has_a_session_of_its_own() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        let o = s.ok(&["run", "--rm", "busybox-wh:1", BB, "sh", "-c", SESSION]);
        assert_eq!(o, "1 1\n", "{driver}: run");
        s.ok(&[
            "create",
            "--name",
            "c",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            SESSION,
        ]);
        assert_eq!(s.ok(&["start", "-a", "c"]), "1 1\n", "{driver}: start");
        s.ok(&[
            "run",
            "-d",
            "--name",
            "bg",
            "busybox-wh:1",
            BB,
            "sleep",
            "30",
        ]);
        let o = s.ok(&["exec", "bg", BB, "sh", "-c", SESSION]);
        let f: Vec<&str> = o.split_whitespace().collect();
        assert_eq!(f[0], f[1], "{driver}: exec leads its own session: {o}");
        s.ok(&["rm", "-f", "bg", "c"]);
    }
}

#[test]
fn capabilities_rlimits_mounts_and_cgroups_follow_docker() {
    let s = setup("overlay2");
    let caps = |args: &[&str]| -> u64 {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            "grep CapEff /proc/self/status",
        ]);
        let o = s.ok(&a);
        u64::from_str_radix(o.trim().trim_start_matches("CapEff:").trim(), 16).unwrap()
    };
    assert_eq!(caps(&[]), 0xa80425fb, "Docker's set");
    assert_eq!(caps(&["--cap-drop", "ALL"]), 0);
    assert_eq!(
        caps(&["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"]),
        1 << 12
    );
    assert_eq!(caps(&["--cap-drop", "mknod"]), 0xa80425fb & !(1 << 27));
    let e = s.fails(
        &[
            "run",
            "--rm",
            "--cap-add",
            "BOGUS",
            "busybox-wh:1",
            BB,
            "true",
        ],
        125,
    );
    assert!(e.contains("unknown capability"), "{e}");
    // Docker's mount options: nothing setuid or device-like where Docker has none.
    let o = s.ok(&[
        "run",
        "--rm",
        "busybox-wh:1",
        BB,
        "cat",
        "/proc/self/mountinfo",
    ]);
    for (point, want) in [
        ("/proc", "nosuid,nodev,noexec"),
        ("/dev", "nosuid"),
        ("/dev/pts", "nosuid,noexec"),
        ("/dev/shm", "nosuid,nodev,noexec"),
        ("/dev/mqueue", "nosuid,nodev,noexec"),
        ("/sys", "ro,nosuid,nodev,noexec"),
        ("/proc/sys", "ro,nosuid,nodev,noexec"),
    ] {
        let line = o
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .unwrap_or_else(|| panic!("{point} not mounted: {o}"));
        let opts = line.split(' ').nth(5).unwrap();
        for w in want.split(',') {
            assert!(opts.split(',').any(|x| x == w), "{point}: {opts} lacks {w}");
        }
    }
    let o = s.ok(&[
        "run",
        "--rm",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "head -c 1 /proc/timer_list | wc -c",
    ]);
    assert_eq!(o, "0\n", "/proc/timer_list is masked");
    // rlimits: the open-files default and --ulimit.
    let o = s.ok(&["run", "--rm", "busybox-wh:1", BB, "sh", "-c", "ulimit -n"]);
    let n: u64 = o.trim().parse().unwrap();
    assert!(n >= 1024, "{o}");
    let o = s.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(o, "100\n200\n");
    s.fails(
        &[
            "run",
            "--rm",
            "--ulimit",
            "nofile=2:1",
            "busybox-wh:1",
            BB,
            "true",
        ],
        125,
    );
    // Its own cgroup namespace: the container's cgroups are its root.
    let o = s.ok(&[
        "run",
        "--rm",
        "-m",
        "64m",
        "busybox-wh:1",
        BB,
        "cat",
        "/proc/self/cgroup",
    ]);
    assert!(o.lines().all(|l| l.ends_with(":/")), "{o}");
    // --privileged: no masked paths, /sys writable, every capability the host grants.
    let o = s.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "head -c 1 /proc/timer_list | wc -c; grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6",
    ]);
    assert!(o.starts_with("1\nrw"), "{o}");
    // inspect and info say what is in force.
    s.ok(&[
        "create",
        "--name",
        "c",
        "--cap-add",
        "NET_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "busybox-wh:1",
        BB,
        "true",
    ]);
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "c"])).unwrap();
    assert_eq!(v[0]["HostConfig"]["CapAdd"][0], "NET_ADMIN");
    assert_eq!(v[0]["HostConfig"]["SecurityOpt"][0], "seccomp=unconfined");
    assert_eq!(v[0]["HostConfig"]["Privileged"], false);
    let info: serde_json::Value =
        serde_json::from_str(&s.ok(&["info", "--format", "json"])).unwrap();
    let opts = info["SecurityOptions"].to_string();
    assert!(opts.contains("name=seccomp,profile=builtin"), "{opts}");
    assert!(opts.contains("name=cgroupns"), "{opts}");
    s.ok(&["rm", "c"]);
}

/// A `--tmpfs` mount is `noexec`, `nodev` and `nosuid` unless asked otherwise: a program
/// copied there does not run, a device node made there does not open, and a setuid-root
/// copy does not give another user root. `:exec`, `:dev` and `:suid` lift each, which shows
/// each attack is real.
#[test]
fn tmpfs_mounts_refuse_programs_devices_and_setuid() {
    let s = setup("overlay2");
    let attack = "cp /bin/busybox /t/busybox && /t/busybox echo RAN; \
                  mknod /t/null c 1 3 && echo x > /t/null && echo DEVICE";
    let o = s.run(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        attack,
    ]);
    assert!(
        !out(&o).contains("RAN"),
        "a program ran from a tmpfs: {}",
        out(&o)
    );
    assert!(
        !out(&o).contains("DEVICE"),
        "a device opened on a tmpfs: {}",
        out(&o)
    );
    let o = s.run(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:exec,dev",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        attack,
    ]);
    assert!(
        out(&o).contains("RAN") && out(&o).contains("DEVICE"),
        "{}{}",
        out(&o),
        err(&o)
    );

    // setuid: root plants a setuid-root copy of a program printing its effective uid;
    // another user runs it. no_new_privs (strata's default) also stops it, so it is lifted
    // here to attack nosuid alone; `:exec` so the copy runs at all.
    let helpers = euid_helper(s.dir.path());
    let vol = format!("{}:/h:ro", helpers.display());
    for (opts, want) in [("/t:exec", "1000"), ("/t:exec,suid", "0")] {
        let id = s.ok(&[
            "run",
            "-d",
            "--security-opt",
            "no-new-privileges=false",
            "-v",
            &vol,
            "--tmpfs",
            opts,
            "busybox-wh:1",
            BB,
            "sleep",
            "30",
        ]);
        let id = id.trim();
        s.ok(&[
            "exec",
            id,
            BB,
            "sh",
            "-c",
            "cp /h/euid /t/euid && chmod 4755 /t/euid",
        ]);
        let euid = s.ok(&["exec", "-u", "1000", id, "/t/euid"]);
        assert_eq!(
            euid.trim(),
            want,
            "--tmpfs {opts}: the setuid copy ran as uid {euid}"
        );
        s.ok(&["rm", "-f", id]);
    }
    s.assert_fsck_ok();
}

/// Sysctls and the UTS name reach only the container's own namespaces: one that would
/// change the host (a global kernel parameter, `net.*` on the host's network, a hostname
/// with the host's UTS namespace) is refused, and the host's value stays as it was.
#[test]
fn sysctls_and_names_never_reach_the_host() {
    let s = setup("vfs");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let other = if forward.trim() == "1" { "0" } else { "1" };
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend(["busybox-wh:1", BB, "true"]);
        s.run(&args)
    };
    let attacks: [Vec<String>; 4] = [
        vec![
            "--network".into(),
            "none".into(),
            "--sysctl".into(),
            "kernel.hostname=owned".into(),
        ],
        vec![
            "--network".into(),
            "host".into(),
            "--sysctl".into(),
            format!("net.ipv4.ip_forward={other}"),
        ],
        vec![
            "--network".into(),
            "none".into(),
            "--uts".into(),
            "host".into(),
            "--hostname".into(),
            "owned".into(),
        ],
        vec![
            "--network".into(),
            "none".into(),
            "--sysctl".into(),
            "net/../kernel/hostname=owned".into(),
        ],
    ];
    for a in &attacks {
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = run(&args);
        assert_eq!(
            o.status.code(),
            Some(125),
            "{args:?} was not refused: {}",
            err(&o)
        );
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward
    );
    // Its own namespace's value is set, and only there.
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--sysctl",
        &format!("net.ipv4.ip_forward={other}"),
        "busybox-wh:1",
        BB,
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
    ]);
    assert_eq!(out(&o).trim(), other, "{}", err(&o));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward
    );
}
