//! `-t`: a pseudo-terminal for the container. The container's standard streams are the
//! terminal's secondary side, which becomes its controlling terminal in a session of its
//! own; this process relays between its own terminal (put in raw mode meanwhile, its size
//! copied) and the primary side until the container closes it.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

/// An allocated pseudo-terminal: the primary side kept here, the secondary for the child.
pub struct Pty {
    pub primary: OwnedFd,
    pub secondary: OwnedFd,
}

/// Allocates a pseudo-terminal sized like this process's terminal (if it has one).
pub fn open() -> std::io::Result<Pty> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let primary = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&primary)?;
    unlockpt(&primary)?;
    let name = ptsname(&primary, Vec::new())?;
    let secondary = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin()) {
        let _ = rustix::termios::tcsetwinsize(&secondary, ws);
    }
    Ok(Pty { primary, secondary })
}

/// In the child, before exec: a new session whose controlling terminal is stdin (the
/// secondary side).
pub fn make_controlling() -> std::io::Result<()> {
    rustix::process::setsid()?;
    rustix::process::ioctl_tiocsctty(std::io::stdin())?;
    Ok(())
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
    let mut to = std::fs::File::from(
        primary
            .try_clone()
            .unwrap_or_else(|_| primary.try_clone().expect("dup")),
    );
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut input = std::io::stdin();
        while let Ok(n) = input.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut from = std::fs::File::from(primary);
    let mut out = std::io::stdout();
    let mut buf = [0u8; 4096];
    // EIO once every holder of the secondary side (the container) has closed it.
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || out.write_all(&buf[..n]).is_err() {
            break;
        }
        let _ = out.flush();
    }
    if let Some(t) = &saved {
        let _ = rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, t);
    }
}
