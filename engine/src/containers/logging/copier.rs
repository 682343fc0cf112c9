//! The shim's side of logging: the container's stdout and stderr are pipes (or, with
//! `-t`, its terminal), and the shim's one thread reads whatever comes, in a poll loop
//! until the container exits, and hands it to the container's driver as entries (a line
//! each, a long line in pieces), so the driver's bounds hold whatever the container does.
//! No thread is started: the shim forks the container again on a restart, and a fork of
//! a process with other threads may deadlock in the child.

use super::json_file::{Stream, Writer};
use super::LogPolicy;
use rustix::event::{PollFd, PollFlags};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

/// Where the entries of one container go.
pub struct Sink {
    writer: Option<Writer>,
    max_message: usize,
}

impl Sink {
    /// The sink for `policy` in container folder `dir`.
    pub fn open(dir: &std::path::Path, policy: LogPolicy) -> io::Result<Sink> {
        Ok(match policy {
            LogPolicy::JsonFile {
                max_size,
                max_files,
                compress,
            } => {
                let w = Writer::open(dir, max_size, max_files)?.compressed(compress);
                Sink {
                    max_message: w.max_message(),
                    writer: Some(w),
                }
            }
            LogPolicy::None => Sink {
                writer: None,
                max_message: 16 << 10,
            },
        })
    }

    fn entry(&mut self, stream: Stream, msg: &[u8]) {
        if msg.is_empty() {
            return;
        }
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.write(stream, msg, SystemTime::now()) {
                tracing::warn!("writing the container's log: {e}");
            }
        }
    }
}

/// One output stream being cut into entries.
struct Output {
    from: std::fs::File,
    stream: Stream,
    line: Vec<u8>,
    open: bool,
}

impl Output {
    /// Hands `bytes` on: each line an entry, a line longer than the driver's entries in
    /// pieces of that length.
    fn feed(&mut self, sink: &mut Sink, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = sink.max_message - self.line.len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&bytes[..=i]);
                    bytes = &bytes[i + 1..];
                    sink.entry(self.stream, &self.line);
                    self.line.clear();
                }
                None => {
                    self.line.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                    if self.line.len() == sink.max_message {
                        sink.entry(self.stream, &self.line);
                        self.line.clear();
                    }
                }
            }
        }
    }

    /// Reads what is there (one read); false at end of file or on an error (a terminal
    /// whose container side is closed reads EIO).
    fn pump(&mut self, sink: &mut Sink, buf: &mut [u8]) -> bool {
        match self.from.read(buf) {
            Ok(0) => false,
            Ok(n) => {
                self.feed(sink, &buf[..n]);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(_) => false,
        }
    }
}

/// Other work the shim does while the container runs (health checks), on the relay's one
/// thread: descriptors that wake the loop, a deadline, and a turn after every wake-up.
pub trait Sidecar {
    /// Descriptors to wake up for (input or hang-up).
    fn fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>>;
    /// When it next wants a turn without any descriptor ready.
    fn deadline(&self) -> Option<std::time::Instant>;
    /// Its turn: must not block.
    fn turn(&mut self);
}

/// Gives `sidecar` its turns until process `pid` exits (a foreground container's health
/// checks, which have no relay to ride on): waits on the process's pidfd and the
/// sidecar's descriptors, up to its next deadline.
pub fn run_sidecar_until_exit(pid: u32, sidecar: &mut dyn Sidecar) {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return;
    };
    let Ok(pidfd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    loop {
        let wait = sidecar
            .deadline()
            .map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let exited = {
            let theirs = sidecar.fds();
            let mut fds = vec![rustix::event::PollFd::new(
                &pidfd,
                rustix::event::PollFlags::IN,
            )];
            for fd in &theirs {
                fds.push(rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN));
            }
            let timeout = wait.map(|w| rustix::event::Timespec {
                tv_sec: w.as_secs() as i64,
                tv_nsec: w.subsec_nanos() as i64,
            });
            let _ = rustix::event::poll(&mut fds, timeout.as_ref());
            !fds[0].revents().is_empty()
        };
        if exited {
            return;
        }
        sidecar.turn();
    }
}

/// No other work.
pub struct NoSidecar;

impl Sidecar for NoSidecar {
    fn fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        Vec::new()
    }

    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }

    fn turn(&mut self) {}
}

/// A container's streams as the shim holds them while it runs.
pub struct Relay {
    sink: Sink,
    outputs: Vec<Output>,
    /// An attached client's input (the container's stdin FIFO) and the terminal it goes to.
    input: Option<(std::fs::File, std::fs::File)>,
    /// Input read but not yet taken by the terminal (a container not reading its stdin):
    /// the FIFO is not read again until it is, and the loop never blocks on the write.
    pending: Vec<u8>,
}

/// How long, after the container exits, the shim keeps reading output still in the pipes
/// (a process that escaped the container's end could otherwise hold them forever).
const DRAIN: Duration = Duration::from_secs(2);

impl Relay {
    /// A relay into `sink` of `outputs` (the read ends of the container's pipes, or its
    /// terminal's primary side as stdout), and of `input` into the terminal.
    pub fn new(
        sink: Sink,
        outputs: Vec<(OwnedFd, Stream)>,
        input: Option<(std::fs::File, OwnedFd)>,
    ) -> Relay {
        Relay {
            sink,
            outputs: outputs
                .into_iter()
                .map(|(fd, stream)| Output {
                    from: std::fs::File::from(fd),
                    stream,
                    line: Vec::new(),
                    open: true,
                })
                .collect(),
            input: input.map(|(f, t)| {
                // Writes to the terminal must never block the loop (its output would stop).
                let _ = rustix::io::ioctl_fionbio(&t, true);
                (f, std::fs::File::from(t))
            }),
            pending: Vec::new(),
        }
    }

    /// Relays until process `pid` (the container's first) exits, then reads what is left
    /// in the pipes for at most [`DRAIN`]; the caller reaps it after. Output written before
    /// the exit is in the log when this returns.
    pub fn run_until_exit(mut self, pid: u32, side: &mut dyn Sidecar) -> Sink {
        let pidfd = rustix::process::Pid::from_raw(pid as i32).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let mut fds: Vec<PollFd<'_>> = Vec::new();
            let mut which: Vec<usize> = Vec::new();
            for (i, o) in self.outputs.iter().enumerate() {
                if o.open {
                    fds.push(PollFd::new(&o.from, PollFlags::IN));
                    which.push(i);
                }
            }
            let waiting = !self.pending.is_empty();
            let input_at = self.input.as_ref().map(|(f, t)| {
                if waiting {
                    fds.push(PollFd::new(t, PollFlags::OUT));
                } else {
                    fds.push(PollFd::new(f, PollFlags::IN));
                }
                fds.len() - 1
            });
            let pid_at = pidfd.as_ref().map(|p| {
                fds.push(PollFd::new(p, PollFlags::IN));
                fds.len() - 1
            });
            let side_fds = side.fds();
            for fd in &side_fds {
                fds.push(PollFd::from_borrowed_fd(*fd, PollFlags::IN));
            }
            // Without a pidfd (an old kernel) the exit is checked every 100 ms.
            let mut wait = if pidfd.is_some() {
                None
            } else {
                Some(Duration::from_millis(100))
            };
            if let Some(d) = side.deadline() {
                let left = d.saturating_duration_since(std::time::Instant::now());
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            let timeout = wait.map(|w| rustix::event::Timespec {
                tv_sec: w.as_secs() as i64,
                tv_nsec: i64::from(w.subsec_nanos()),
            });
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            drop(side_fds);
            side.turn();
            for (k, &i) in which.iter().enumerate() {
                if ready[k] && !self.outputs[i].pump(&mut self.sink, &mut buf) {
                    self.outputs[i].open = false;
                }
            }
            if let Some(k) = input_at {
                if ready[k] && !self.forward_input(&mut buf) {
                    self.input = None;
                }
            }
            let gone = match pid_at {
                Some(k) => ready[k],
                None => exited(pid),
            };
            if gone {
                break;
            }
        }
        self.drain(&mut buf);
        self.sink
    }

    /// The client's input to the terminal: what is pending first, then what the FIFO
    /// has; false once the input is gone (its reader ended or the terminal failed).
    fn forward_input(&mut self, buf: &mut [u8]) -> bool {
        let Some((from, to)) = self.input.as_mut() else {
            return false;
        };
        if self.pending.is_empty() {
            match from.read(buf) {
                Ok(0) => return false,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) => {
                    return matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    )
                }
            }
        }
        while !self.pending.is_empty() {
            match to.write(&self.pending) {
                Ok(0) => return false,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        true
    }

    /// Reads the pipes to their end (every writer gone) or until [`DRAIN`] has passed,
    /// then hands on the last partial lines.
    fn drain(&mut self, buf: &mut [u8]) {
        let until = Instant::now() + DRAIN;
        for o in &mut self.outputs {
            let _ = rustix::io::ioctl_fionbio(o.from.as_fd(), true);
        }
        while Instant::now() < until && self.outputs.iter().any(|o| o.open) {
            let mut fds: Vec<PollFd<'_>> = self
                .outputs
                .iter()
                .filter(|o| o.open)
                .map(|o| PollFd::new(&o.from, PollFlags::IN))
                .collect();
            let left = until.saturating_duration_since(Instant::now());
            let t = rustix::event::Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            };
            if rustix::event::poll(&mut fds, Some(&t)).unwrap_or(0) == 0 {
                break;
            }
            drop(fds);
            for o in self.outputs.iter_mut().filter(|o| o.open) {
                if !o.pump(&mut self.sink, buf) {
                    o.open = false;
                }
            }
        }
        for o in &mut self.outputs {
            let line = std::mem::take(&mut o.line);
            self.sink.entry(o.stream, &line);
        }
    }
}

/// Whether `pid` (a child) has exited, without reaping it.
fn exited(pid: u32) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return true;
    };
    matches!(
        rustix::process::waitid(
            rustix::process::WaitId::Pid(p),
            rustix::process::WaitIdOptions::EXITED
                | rustix::process::WaitIdOptions::NOHANG
                | rustix::process::WaitIdOptions::NOWAIT,
        ),
        Ok(Some(_)) | Err(_)
    )
}
