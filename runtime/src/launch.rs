//! Starting a container's process: `clone3` into new namespaces, the parent puts it in its
//! cgroup, then the child builds its filesystem view, sets hostname, loopback, capabilities,
//! `no_new_privs` and user, and `execve`s. A close-on-exec pipe tells the parent whether the
//! exec happened, so "not found" (127) and "cannot run" (126) are told apart from a started
//! container, with no polling. `exec` joins a running container's namespaces the same way.

use crate::cgroups::Cgroup;
use crate::error::{Result, RuntimeError};
use crate::rootfs;
use crate::spec::Plan;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::io("pipe", "", std::io::Error::from(e)))?;
    Ok((r, w))
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks with `flags` (CLONE_NEW*) like fork(2), straight into the cgroup v2 directory
/// `cgroup` when given: returns 0 in the child, its pid in the parent.
fn clone3(flags: u64, cgroup: Option<&OwnedFd>) -> std::io::Result<u32> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 without CLONE_VM behaves as fork; the argument struct is valid for
    // the call and its size is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as u32)
    }
}

/// Where the container's standard streams go (`None`: inherited from this process).
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// A started container.
#[derive(Debug)]
pub struct Started {
    pub pid: u32,
    pub cgroup: Cgroup,
    /// With `-t`: the primary side of the container's terminal, to relay.
    pub terminal: Option<OwnedFd>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + the signal that killed it (as shells and Docker report).
    pub code: i32,
    pub signal: Option<i32>,
}

/// Waits for child `pid`.
pub fn wait(pid: u32) -> Result<Exit> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: plain waitpid on our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if r >= 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(RuntimeError::io("wait for", format!("pid {pid}"), e));
        }
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        Ok(Exit {
            code: 128 + sig,
            signal: Some(sig),
        })
    } else {
        Ok(Exit {
            code: libc::WEXITSTATUS(status),
            signal: None,
        })
    }
}

/// Brings the loopback interface up in the current network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a datagram socket and two ioctls on a zeroed, NUL-terminated ifreq.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let _guard = OwnedFd::from_raw_fd(s);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(s, libc::SIOCSIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What the child reports through the exec pipe before dying.
const NOT_FOUND: u8 = b'N';
const CANNOT_RUN: u8 = b'X';
const SETUP: u8 = b'S';

fn report_and_exit(fd: RawFd, kind: u8, msg: &str, code: i32) -> ! {
    let mut buf = vec![kind];
    buf.extend_from_slice(msg.as_bytes());
    // SAFETY: writing our own buffer to a pipe fd we own, then exiting without unwinding.
    unsafe {
        libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len());
        libc::_exit(code)
    }
}

/// Marks every descriptor but stdio close-on-exec, so nothing the caller had open (a
/// directory of the host, a socket) reaches the container's command (runc's
/// CVE-2024-21626 class). `close_range` where the kernel has it, else one by one.
fn cloexec_from_3() -> std::io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with integer arguments only changes descriptor flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    for e in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = e?.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if fd > 2 {
            // SAFETY: setting FD_CLOEXEC on a descriptor number (a closed one fails harmlessly).
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// Makes this process non-dumpable: a container process can then neither ptrace it nor
/// open its `/proc/PID/exe`, `mem`, `fd` or `root` (runc's CVE-2019-5736) while it works
/// inside the container's namespaces. `execve` of the container's command resets it.
fn non_dumpable() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// In a freshly cloned child: waits for the parent's go (it has put the child in its
/// cgroups), exits 125 when told otherwise, then makes itself non-dumpable before it
/// touches anything of the container's.
fn await_go(go: OwnedFd, rep: RawFd) {
    let mut b = [0u8; 1];
    let _ = std::fs::File::from(go).read(&mut b);
    if b[0] != b'g' {
        // SAFETY: exiting the child without unwinding into the parent's stack.
        unsafe { libc::_exit(125) }
    }
    if let Err(e) = non_dumpable() {
        report_and_exit(
            rep,
            SETUP,
            &format!("make the process non-dumpable: {e}"),
            125,
        );
    }
}

/// Applies the rlimits.
fn set_rlimits(limits: &[(libc::__rlimit_resource_t, u64, u64)]) -> std::io::Result<()> {
    for &(res, soft, hard) in limits {
        let l = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(res, &l) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(std::io::Error::new(
                e.kind(),
                format!("resource {res} to {soft}:{hard}: {e}"),
            ));
        }
    }
    Ok(())
}

/// The identity and privileges a process takes before exec.
#[derive(Debug, Clone)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub caps: u64,
    pub no_new_privs: bool,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    /// The compiled seccomp filters (none: unconfined).
    pub seccomp: Option<crate::seccomp::compile::Program>,
}

/// A container's process starts as from a fresh shell: every signal at its default
/// disposition and none blocked, whatever its launcher ignored (the daemon ignores
/// SIGPIPE) or blocked. `execve` keeps ignored signals and the mask; it resets only
/// handlers.
fn reset_signals() {
    // The raw system call: glibc's `signal` refuses the signals it keeps for itself (32
    // and 33), which a launcher may still have ignored. An all-zero kernel sigaction is
    // SIG_DFL with no flags and an empty mask, whatever the architecture's layout.
    let dfl = [0u64; 4];
    // SAFETY: rt_sigaction with a valid, large enough struct and no old-action pointer;
    // sigprocmask with a valid set. Both async-signal-safe.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                );
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

impl Identity {
    fn of(plan: &Plan) -> Result<Identity> {
        Ok(Identity {
            uid: plan.uid,
            gid: plan.gid,
            additional_gids: plan.additional_gids.clone(),
            caps: plan.caps,
            no_new_privs: plan.no_new_privs,
            rlimits: plan.rlimits.clone(),
            seccomp: plan.seccomp_program()?,
        })
    }

    /// Everything a process takes on last, in order: rlimits, then the seccomp filter
    /// and the identity. With `no_new_privs` the filter goes in last, so the setup itself
    /// is not filtered; without it, installing one needs CAP_SYS_ADMIN, so it goes in
    /// before the privileges are dropped (Docker's profile allows what follows).
    fn enter(&self) -> std::result::Result<(), String> {
        reset_signals();
        set_rlimits(&self.rlimits).map_err(|e| format!("setrlimit {e}"))?;
        let filter = || -> std::result::Result<(), String> {
            if let Some(p) = &self.seccomp {
                crate::seccomp::install(p)
                    .map_err(|e| format!("install the seccomp filter: {e}"))?;
            }
            Ok(())
        };
        if !self.no_new_privs {
            filter()?;
        }
        self.apply().map_err(|e| format!("drop privileges: {e}"))?;
        if self.no_new_privs {
            filter()?;
        }
        Ok(())
    }

    /// Drops capabilities not kept, then switches user; root keeps the kept set effective.
    fn apply(&self) -> std::io::Result<()> {
        let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(40);
        for cap in 0..=last {
            if self.caps & (1u64 << cap) == 0 {
                // SAFETY: prctl with integer arguments only.
                let r =
                    unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
                if r < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EINVAL) {
                        return Err(e);
                    }
                }
            }
        }
        let gids: Vec<libc::gid_t> = self.additional_gids.clone();
        // SAFETY: setgroups/setgid/setuid with a valid array and integer ids.
        unsafe {
            if libc::setgroups(gids.len(), gids.as_ptr()) < 0
                || libc::setresgid(self.gid, self.gid, self.gid) < 0
                || libc::setresuid(self.uid, self.uid, self.uid) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        let set = rustix::thread::CapabilitySet::from_bits_retain(if self.uid == 0 {
            self.caps
        } else {
            0
        });
        rustix::thread::set_capabilities(
            None,
            rustix::thread::CapabilitySets {
                effective: set,
                permitted: set,
                inheritable: set,
            },
        )?;
        if self.no_new_privs {
            rustix::thread::set_no_new_privs(true)?;
        }
        Ok(())
    }
}

/// The command to exec, prepared before forking.
struct Command {
    argv: Vec<CString>,
    envp: Vec<CString>,
    name: String,
    path_dirs: Vec<String>,
}

impl Command {
    fn new(args: &[String], env: &[String]) -> Result<Command> {
        let argv: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| RuntimeError::Spec("an argument contains a NUL byte".into()))?;
        let envp: Vec<CString> = env
            .iter()
            .filter_map(|e| CString::new(e.as_bytes()).ok())
            .collect();
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        Ok(Command {
            name: args.first().cloned().unwrap_or_default(),
            argv,
            envp,
            path_dirs: path.split(':').map(str::to_string).collect(),
        })
    }

    /// Execs (searching PATH like execvp); returns only on failure: (kind, why).
    fn exec(&self) -> (u8, String) {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        let candidates: Vec<String> = if self.name.contains('/') {
            vec![self.name.clone()]
        } else {
            self.path_dirs
                .iter()
                .filter(|d| !d.is_empty())
                .map(|d| format!("{}/{}", d.trim_end_matches('/'), self.name))
                .collect()
        };
        let mut denied: Option<String> = None;
        for c in candidates {
            let Ok(p) = CString::new(c.clone()) else {
                continue;
            };
            // SAFETY: NUL-terminated path and NULL-terminated argv/envp arrays of live strings.
            unsafe { libc::execve(p.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => {}
                Some(libc::EACCES) | Some(libc::EPERM) => denied = Some(format!("{c}: {e}")),
                _ => return (CANNOT_RUN, format!("{c}: {e}")),
            }
        }
        match denied {
            Some(why) => (CANNOT_RUN, why),
            None => (NOT_FOUND, self.name.clone()),
        }
    }
}

fn install_stdio(stdio: &Stdio) -> std::io::Result<()> {
    for (fd, target) in [(&stdio.stdin, 0), (&stdio.stdout, 1), (&stdio.stderr, 2)] {
        if let Some(fd) = fd {
            // SAFETY: dup2 onto a standard descriptor of this (child) process.
            if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

fn read_report(r: OwnedFd) -> Vec<u8> {
    let mut f = std::fs::File::from(r);
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    buf
}

fn error_of(report: &[u8], cmd: &str) -> RuntimeError {
    let msg = String::from_utf8_lossy(&report[1..]).to_string();
    match report[0] {
        NOT_FOUND => RuntimeError::NotFound(cmd.to_string()),
        CANNOT_RUN => RuntimeError::CannotInvoke {
            cmd: cmd.to_string(),
            why: msg,
        },
        _ => RuntimeError::Setup(msg),
    }
}

/// Starts the container described by `plan`: returns once its command is running (or
/// failed to start, with 125/126/127 semantics in the error).
///
/// The child is cloned straight into the container's cgroup v2 directory (device program
/// and v2 limits), waits until the parent has put it in the v1 hierarchies, then, before
/// anything of the container's can see it: becomes non-dumpable, takes a session of its
/// own (so it can never push input into the caller's terminal with TIOCSTI), a cgroup
/// namespace rooted at its own cgroups, and marks every inherited descriptor
/// close-on-exec. Then it builds the filesystem view, and last takes rlimits, seccomp
/// filter and identity, changes to the working directory and execs.
pub fn start(plan: &Plan, stdio: Stdio) -> Result<Started> {
    let started = std::time::Instant::now();
    let cmd = Command::new(&plan.args, &plan.env)?;
    let id = Identity::of(plan)?;
    let cgroup = plan.cgroup()?;
    if let Err(e) = cgroup.create(&plan.resources) {
        cgroup.remove();
        return Err(e);
    }
    let cg_fd = match cgroup.v2_fd() {
        Ok(fd) => fd,
        Err(e) => {
            cgroup.remove();
            return Err(e);
        }
    };
    let net_ns = match &plan.net_path {
        Some(p) => Some(
            rustix::fs::open(
                p,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| {
                cgroup.remove();
                RuntimeError::io("open network namespace", p, std::io::Error::from(e))
            })?,
        ),
        None => None,
    };
    // Another container's namespaces to join: open now, joined by the child (IPC, UTS)
    // or, for PID, by this thread around the clone (a process is born into its PID
    // namespace, never moved).
    let mut joins = Vec::new();
    for (flag, p) in &plan.join {
        match rustix::fs::open(
            p,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => joins.push((*flag, fd)),
            Err(e) => {
                cgroup.remove();
                return Err(RuntimeError::io(
                    "open the namespace to join",
                    p,
                    std::io::Error::from(e),
                ));
            }
        }
    }
    let (go_r, go_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    let (tty_parent, tty_child) = terminal_socket(plan.terminal)?;
    // The cgroup namespace is made after the v1 joins, so it is rooted at them too.
    let new_cgroupns = plan.namespaces & libc::CLONE_NEWCGROUP as u64 != 0;
    let flags = plan.namespaces & !(libc::CLONE_NEWCGROUP as u64);
    let pid_join = joins.iter().find(|(f, _)| *f == libc::CLONE_NEWPID as u64);
    let own_pid_ns = match pid_join {
        Some(_) => Some(
            rustix::fs::open(
                "/proc/thread-self/ns/pid",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| {
                cgroup.remove();
                RuntimeError::io("open", "/proc/thread-self/ns/pid", std::io::Error::from(e))
            })?,
        ),
        None => None,
    };
    if let Some((_, fd)) = pid_join {
        // SAFETY: setns of this thread's PID namespace for children, with a descriptor held.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) } < 0 {
            let e = std::io::Error::last_os_error();
            cgroup.remove();
            return Err(RuntimeError::io("join the PID namespace", "", e));
        }
    }
    let cloned = clone3(
        flags & !(libc::CLONE_NEWPID as u64 * pid_join.is_some() as u64),
        cg_fd.as_ref(),
    );
    if let Some(own) = &own_pid_ns {
        // SAFETY: back to this process's own PID namespace for later children.
        unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWPID) };
    }
    let pid = match cloned {
        Ok(p) => p,
        Err(e) => {
            cgroup.remove();
            return Err(RuntimeError::io("clone3 into new namespaces", "", e));
        }
    };
    if pid == 0 {
        drop(go_w);
        drop(rep_r);
        let rep = rep_w.as_raw_fd();
        await_go(go_r, rep);
        for (flag, fd) in joins
            .iter()
            .filter(|(f, _)| *f != libc::CLONE_NEWPID as u64)
        {
            // SAFETY: setns of this single-threaded child with a descriptor it holds.
            if unsafe { libc::setns(fd.as_raw_fd(), *flag as i32) } < 0 {
                let e = std::io::Error::last_os_error();
                report_and_exit(
                    rep,
                    SETUP,
                    &format!("join the other container's namespace: {e}"),
                    125,
                );
            }
        }
        if let Some(ns) = &net_ns {
            // Before /sys is mounted, so it shows the container's interfaces.
            // SAFETY: setns of this single-threaded child with a descriptor it holds.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
                let e = std::io::Error::last_os_error();
                report_and_exit(rep, SETUP, &format!("join the network namespace: {e}"), 125);
            }
        }
        if !plan.terminal {
            // With -t the terminal's own session is made when it is opened.
            if let Err(e) = rustix::process::setsid() {
                report_and_exit(rep, SETUP, &format!("setsid: {e}"), 125);
            }
        }
        if new_cgroupns {
            // SAFETY: only the cgroup namespace is unshared, no descriptor table.
            let r =
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) };
            if let Err(e) = r {
                report_and_exit(rep, SETUP, &format!("new cgroup namespace: {e}"), 125);
            }
        }
        if let Err(e) = install_stdio(&stdio) {
            report_and_exit(rep, SETUP, &format!("stdio: {e}"), 125);
        }
        if let Err(e) = cloexec_from_3() {
            report_and_exit(
                rep,
                SETUP,
                &format!("close inherited descriptors: {e}"),
                125,
            );
        }
        // Through the host's /proc while it is still there: each file answers for the
        // namespaces of the process that writes it, the container's own.
        for (k, v) in &plan.sysctls {
            let written = crate::spec::sysctl_key_path(k)
                .map_err(|e| e.to_string())
                .and_then(|p| std::fs::write(&p, v).map_err(|e| format!("{}: {e}", p.display())));
            if let Err(e) = written {
                report_and_exit(rep, SETUP, &format!("sysctl {k}={v}: {e}"), 125);
            }
        }
        if let Some(adj) = plan.oom_score_adj {
            if let Err(e) = std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
                report_and_exit(rep, SETUP, &format!("oom_score_adj {adj}: {e}"), 125);
            }
        }
        if let Err(e) = rootfs::setup(plan) {
            report_and_exit(rep, SETUP, &e, 125);
        }
        if let Some(sock) = &tty_child {
            let sent = crate::tty::open_in_container()
                .and_then(|primary| crate::tty::send_fd(sock, std::os::fd::AsFd::as_fd(&primary)));
            if let Err(e) = sent {
                report_and_exit(rep, SETUP, &format!("terminal: {e}"), 125);
            }
        }
        let own_uts = plan.namespaces & libc::CLONE_NEWUTS as u64 != 0;
        if let Some(d) = plan.domainname.as_ref().filter(|_| own_uts) {
            if let Err(e) = rustix::system::setdomainname(d.as_bytes()) {
                report_and_exit(rep, SETUP, &format!("setdomainname: {e}"), 125);
            }
        }
        if let Some(h) = plan.hostname.as_ref().filter(|_| own_uts) {
            if !h.is_empty() {
                if let Err(e) = rustix::system::sethostname(h.as_bytes()) {
                    report_and_exit(rep, SETUP, &format!("sethostname: {e}"), 125);
                }
            }
        }
        if plan.new_net() {
            if let Err(e) = loopback_up() {
                report_and_exit(rep, SETUP, &format!("bring up lo: {e}"), 125);
            }
        }
        if let Err(e) = id.enter() {
            report_and_exit(rep, SETUP, &e, 125);
        }
        if let Err(e) = rustix::process::chdir(plan.cwd.as_str()) {
            report_and_exit(rep, SETUP, &format!("chdir {}: {e}", plan.cwd), 125);
        }
        if plan.init {
            crate::init::run(
                || {
                    let (kind, why) = cmd.exec();
                    report_and_exit(rep, kind, &why, if kind == NOT_FOUND { 127 } else { 126 });
                },
                rep,
            );
        }
        let (kind, why) = cmd.exec();
        report_and_exit(rep, kind, &why, if kind == NOT_FOUND { 127 } else { 126 });
    }
    drop(go_r);
    drop(rep_w);
    drop(net_ns);
    drop(joins);
    drop(stdio);
    drop(tty_child);
    drop(cg_fd);
    let joined = cgroup.add(pid);
    let go: &[u8] = if joined.is_ok() { b"g" } else { b"x" };
    let _ = std::fs::File::from(go_w).write_all(go);
    // The terminal comes (or the socket closes) before the exec report can end.
    let terminal = match &tty_parent {
        Some(sock) => crate::tty::recv_fd(sock).ok().flatten(),
        None => None,
    };
    let report = read_report(rep_r);
    if let Err(e) = joined {
        let _ = wait(pid);
        cgroup.remove();
        return Err(e);
    }
    if !report.is_empty() {
        let _ = wait(pid);
        cgroup.remove();
        return Err(error_of(&report, &cmd.name));
    }
    tracing::debug!(
        pid,
        program = %cmd.name,
        us = started.elapsed().as_micros() as u64,
        "container process started (namespaces, rootfs, cgroup, seccomp set up)"
    );
    Ok(Started {
        pid,
        cgroup,
        terminal,
    })
}

/// What `exec` runs in a running container.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub identity: Identity,
    /// Test hook (`STRATA_TEST_EXEC_PAUSE_MS`): how long the process waits inside the
    /// container, fully set up, before it execs; lets a test attack it meanwhile.
    pub pause_before_exec: Option<std::time::Duration>,
    /// `exec -t`: the command gets a terminal of the container's devpts, relayed to this
    /// process's own standard streams.
    pub terminal: bool,
    /// Killed (SIGKILL) once it has run this long: a health check's timeout. The helper
    /// inside the container kills it, as only it can reach it reliably.
    pub deadline: Option<std::time::Duration>,
    /// The container's OOM killer bias.
    pub oom_score_adj: Option<i32>,
}

impl ExecSpec {
    /// The container's own process settings (identity, rlimits, seccomp) with another
    /// command.
    pub fn from_plan(plan: &Plan, args: Vec<String>) -> Result<ExecSpec> {
        Ok(ExecSpec {
            args,
            env: plan.env.clone(),
            cwd: plan.cwd.clone(),
            identity: Identity::of(plan)?,
            pause_before_exec: None,
            terminal: false,
            deadline: None,
            oom_score_adj: plan.oom_score_adj,
        })
    }
}

/// Waits for child `pid` to exit for at most `d`, then kills it (it is reaped after).
fn kill_at_deadline(pid: u32, d: std::time::Duration) {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    let end = std::time::Instant::now() + d;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
            return;
        }
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return,
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
    }
}

/// With `-t`: the socket pair the container's side sends its terminal over.
fn terminal_socket(wanted: bool) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !wanted {
        return Ok((None, None));
    }
    let (a, b) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| RuntimeError::io("socketpair", "", std::io::Error::from(e)))?;
    Ok((Some(a), Some(b)))
}

/// Runs a command inside running container `pid` (its namespaces and cgroup) and returns
/// its exit. The helper cloned here (straight into the container's cgroup v2 directory)
/// makes itself non-dumpable and marks inherited descriptors close-on-exec before it
/// joins the namespaces, then forks the command, which takes a session of its own and the
/// container's rlimits, seccomp filter and identity; it is waited for like a container.
pub fn exec_in(pid: u32, cgroup: &Cgroup, spec: &ExecSpec, stdio: Stdio) -> Result<Exit> {
    let cmd = Command::new(&spec.args, &spec.env)?;
    let mut ns = Vec::new();
    for name in ["ipc", "uts", "net", "cgroup", "pid", "mnt"] {
        let p = format!("/proc/{pid}/ns/{name}");
        let fd = match rustix::fs::open(
            p.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => fd,
            // A kernel without cgroup namespaces.
            Err(rustix::io::Errno::NOENT) if name == "cgroup" => continue,
            Err(e) => {
                return Err(RuntimeError::io(
                    "open namespace",
                    &p,
                    std::io::Error::from(e),
                ))
            }
        };
        ns.push(fd);
    }
    let cg_fd = cgroup.v2_fd()?;
    let (go_r, go_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    let (tty_parent, tty_child) = terminal_socket(spec.terminal)?;
    let helper = clone3(0, cg_fd.as_ref()).map_err(|e| RuntimeError::io("fork", "", e))?;
    if helper == 0 {
        drop(go_w);
        drop(rep_r);
        drop(tty_parent);
        let rep = rep_w.as_raw_fd();
        await_go(go_r, rep);
        if let Err(e) = install_stdio(&stdio) {
            report_and_exit(rep, SETUP, &format!("stdio: {e}"), 125);
        }
        if let Err(e) = cloexec_from_3() {
            report_and_exit(
                rep,
                SETUP,
                &format!("close inherited descriptors: {e}"),
                125,
            );
        }
        for fd in &ns {
            if let Err(e) =
                rustix::thread::move_into_link_name_space(std::os::fd::AsFd::as_fd(fd), None)
            {
                report_and_exit(
                    rep,
                    SETUP,
                    &format!("join the container's namespaces: {e}"),
                    125,
                );
            }
        }
        let child = match clone3(0, None) {
            Ok(c) => c,
            Err(e) => report_and_exit(rep, SETUP, &format!("fork: {e}"), 125),
        };
        if child == 0 {
            if let Some(sock) = &tty_child {
                // Its own session, the terminal's secondary side as its streams.
                let sent = crate::tty::open_in_container().and_then(|primary| {
                    crate::tty::send_fd(sock, std::os::fd::AsFd::as_fd(&primary))
                });
                if let Err(e) = sent {
                    report_and_exit(rep, SETUP, &format!("terminal: {e}"), 125);
                }
            } else if let Err(e) = rustix::process::setsid() {
                report_and_exit(rep, SETUP, &format!("setsid: {e}"), 125);
            }
            // The container's OOM bias, as its own processes have it.
            if let Some(adj) = spec.oom_score_adj {
                if let Err(e) = std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
                    report_and_exit(rep, SETUP, &format!("oom_score_adj {adj}: {e}"), 125);
                }
            }
            if let Err(e) = spec.identity.enter() {
                report_and_exit(rep, SETUP, &e, 125);
            }
            if let Err(e) = rustix::process::chdir(spec.cwd.as_str()) {
                report_and_exit(rep, SETUP, &format!("chdir {}: {e}", spec.cwd), 125);
            }
            if let Some(d) = spec.pause_before_exec {
                std::thread::sleep(d);
            }
            let (kind, why) = cmd.exec();
            report_and_exit(rep, kind, &why, if kind == NOT_FOUND { 127 } else { 126 });
        }
        drop(rep_w);
        // Only the command holds its end now: a failure before it sends the terminal
        // closes the socket and the waiting parent sees that.
        drop(tty_child);
        if let Some(d) = spec.deadline {
            kill_at_deadline(child, d);
        }
        let code = wait(child).map(|e| e.code).unwrap_or(125);
        // SAFETY: exiting the helper with the command's status, without unwinding.
        unsafe { libc::_exit(code) }
    }
    drop(go_r);
    drop(rep_w);
    drop(stdio);
    drop(cg_fd);
    drop(tty_child);
    let joined = cgroup.add(helper);
    let go: &[u8] = if joined.is_ok() { b"g" } else { b"x" };
    let _ = std::fs::File::from(go_w).write_all(go);
    let terminal = match &tty_parent {
        Some(sock) => crate::tty::recv_fd(sock).ok().flatten(),
        None => None,
    };
    drop(tty_parent);
    let report = read_report(rep_r);
    // The terminal relayed while the command runs; the relay ends when the command's
    // side closes.
    let relay = terminal.map(|t| std::thread::spawn(move || crate::tty::relay(t)));
    let exit = wait(helper)?;
    if let Some(r) = relay {
        let _ = r.join();
    }
    joined?;
    if !report.is_empty() {
        return Err(error_of(&report, &cmd.name));
    }
    Ok(exit)
}
