//! `-t`: a pseudo-terminal for the container, opened inside it (from its own devpts, as
//! runc does with a console socket) and passed back over a unix socket. The container's
//! standard streams are the terminal's secondary side, its controlling terminal in a
//! session of its own; this process relays between its own terminal (put in raw mode
//! meanwhile, its size copied) and the primary side until the container closes it.

use std::os::fd::{AsFd, OwnedFd};

/// In the container, after `pivot_root` (its own devpts instance is mounted): opens a
/// terminal from the container's `/dev/ptmx`, makes its secondary side stdin, stdout,
/// stderr and the controlling terminal of a new session, and returns the primary side
/// (for [`send_fd`] to the parent). So `tty` in the container names `/dev/pts/0` there.
pub fn open_in_container() -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let primary = rustix::fs::open(
        "/dev/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::pty::unlockpt(&primary)?;
    let name = rustix::pty::ptsname(&primary, Vec::new())?;
    let secondary = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    rustix::process::setsid()?;
    for target in 0..3 {
        // SAFETY: dup2 onto this (child) process's standard descriptors.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&secondary), target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    drop(secondary);
    rustix::process::ioctl_tiocsctty(std::io::stdin())?;
    Ok(primary)
}

/// Sends `fd` over the unix socket `sock` (SCM_RIGHTS).
pub fn send_fd(sock: &OwnedFd, fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(
        sock,
        &[std::io::IoSlice::new(b"t")],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Receives a descriptor sent with [`send_fd`]; `None` when the sender closed the socket
/// without sending one (it failed before).
pub fn recv_fd(sock: &OwnedFd) -> std::io::Result<Option<OwnedFd>> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let r = recvmsg(
        sock,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if r.bytes == 0 {
        return Ok(None);
    }
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin()) {
                    let _ = rustix::termios::tcsetwinsize(&fd, ws);
                }
                return Ok(Some(fd));
            }
        }
    }
    Ok(None)
}

/// Relays this process's stdin to `primary` and `primary` to stdout until the container
/// side is closed; this terminal is in raw mode meanwhile and restored after.
pub fn relay(primary: OwnedFd) {
    let stdin = std::io::stdin();
    let saved = rustix::termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        raw.make_raw();
        let _ =
            rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw);
    }
    if let Ok(input) = primary.try_clone() {
        std::thread::spawn(move || fsutil::pump(std::io::stdin(), std::fs::File::from(input)));
    }
    // Until EIO: every holder of the secondary side (the container) has closed it.
    fsutil::pump(std::fs::File::from(primary), std::io::stdout());
    if let Some(t) = &saved {
        let _ = rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, t);
    }
}

/// Sets the window size of the terminal process `pid` has as its standard streams (its
/// first of fd 0, 1, 2 that is a terminal), which signals SIGWINCH to the terminal's
/// foreground processes: `resize` of a `-t` container or exec. False when it has none.
pub fn resize(pid: u32, rows: u16, cols: u16) -> std::io::Result<bool> {
    use rustix::fs::{FileType, Mode, OFlags};
    for fd in 0..3 {
        // The process chose what its streams are: only a pseudo-terminal's secondary side
        // (Unix98 pty majors 136-143) is opened, never a file or a device it was given.
        // The node is pinned with O_PATH (which opens nothing) and checked, then that same
        // node is opened: the process cannot swap its fd in between.
        let Ok(node) = rustix::fs::open(
            format!("/proc/{pid}/fd/{fd}").as_str(),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let is_pty = rustix::fs::fstat(&node).is_ok_and(|st| {
            FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
                && (136..=143).contains(&rustix::fs::major(st.st_rdev))
        });
        if !is_pty {
            continue;
        }
        let Ok(f) = rustix::fs::open(
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&node)).as_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) else {
            continue;
        };
        if !rustix::termios::isatty(&f) {
            continue;
        }
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&f, ws)?;
        return Ok(true);
    }
    Ok(false)
}

/// [`resize`] for the first process under `pid` (not `pid` itself: an exec's shim, whose
/// own streams are its caller's) that has a terminal, breadth first.
pub fn resize_below(pid: u32, rows: u16, cols: u16) -> std::io::Result<bool> {
    let mut queue = children(pid);
    let mut seen = 0;
    while let Some(p) = queue.first().copied() {
        queue.remove(0);
        if resize(p, rows, cols)? {
            return Ok(true);
        }
        seen += 1;
        if seen > 64 {
            break;
        }
        queue.extend(children(p));
    }
    Ok(false)
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
