//! A minimal init for `--init`: the container's pid 1 forks the command and stays behind
//! to reap every orphan the command leaves (a pid namespace's init inherits them) and to
//! pass on the signals it gets (`stop`'s SIGTERM, `kill -s`), then exits as the command
//! did (128 + the signal when it was killed), as Docker's `docker-init` (tini) does.
//!
//! It is this process, already running in the container after every isolation step, so
//! no init binary has to exist in, or be mounted into, the container's filesystem.

use std::os::fd::RawFd;

/// Forks; the child (the command) runs `exec`, which never returns. This process, pid 1,
/// closes its copy of the start report pipe `report` (the command's exec closes the
/// other), then waits for signals until the command exits, and exits with its status.
pub(crate) fn run(exec: impl FnOnce(), report: RawFd) -> ! {
    // SAFETY: signal-mask and process calls of a single-threaded child before exec, on
    // sets and status words it owns; `_exit` never returns.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        // Blocked before the fork, so nothing sent in between is lost: a blocked signal
        // stays pending even for a namespace's init without handlers.
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        let child = libc::fork();
        if child < 0 {
            libc::_exit(125);
        }
        if child == 0 {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            exec();
            libc::_exit(126);
        }
        libc::close(report);
        hide_command_line();
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&all, &mut info);
            if sig < 0 {
                continue;
            }
            if sig != libc::SIGCHLD {
                libc::kill(child, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    };
                    libc::_exit(code);
                }
            }
        }
    }
}

/// Replaces this process's command line (`/proc/1/cmdline` to the container: strata's own
/// arguments, the host's data root among them) with `strata-init`, by rewriting the
/// argument area the kernel reports it from (as setproctitle does).
fn hide_command_line() {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name (which may hold spaces and parentheses): field 3 on.
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return;
    };
    let fields: Vec<&str> = rest.split(' ').collect();
    // arg_start and arg_end are fields 48 and 49 (proc(5)).
    let num = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<usize>().ok());
    let (Some(start), Some(end)) = (num(48), num(49)) else {
        return;
    };
    if start == 0 || end <= start || end - start > 1 << 20 {
        return;
    }
    const NAME: &[u8] = b"strata-init\0";
    // SAFETY: [start, end) is this process's own argument area as the kernel reports it:
    // mapped and writable (the initial stack); nothing reads the original arguments now.
    unsafe {
        std::ptr::write_bytes(start as *mut u8, 0, end - start);
        let n = NAME.len().min(end - start);
        std::ptr::copy_nonoverlapping(NAME.as_ptr(), start as *mut u8, n);
    }
}
