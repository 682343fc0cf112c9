//! `/containers/{id}/exec`, `/exec/{id}/start`, `/exec/{id}/json`: exec instances kept in
//! the daemon's memory (as dockerd does); each runs under the engine's exec shim with pipes
//! whose output is framed onto the client's connection.

use crate::router::{Call, Reply};
use crate::{ApiError, ApiResult};
use engine::containers::{ExecIo, ExecOptions};
use serde_json::json;
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// One exec instance.
#[derive(Clone)]
struct Instance {
    container: String,
    options: ExecOptions,
    tty: bool,
    /// The client sends the command's stdin over the hijacked connection.
    stdin: bool,
    /// Which of the command's streams the client gets (an unattached one is dropped).
    stdout: bool,
    stderr: bool,
    /// The detach keys given at create (the start's own win).
    detach_keys: Option<String>,
    /// The terminal's size to start with, (rows, columns).
    console_size: Option<(u16, u16)>,
    running: bool,
    exit_code: Option<i32>,
    /// When it ended (a finished instance is kept a while for `exec inspect`).
    ended: Option<std::time::Instant>,
    /// The exec shim's pid while it runs (0 before): `resize` finds the terminal below it.
    shim_pid: Arc<AtomicU32>,
}

static EXECS: Mutex<Option<HashMap<String, Instance>>> = Mutex::new(None);

/// The most exec instances kept at once (running, created, or ended and kept a while).
const MAX_INSTANCES: usize = 4096;

/// How long an ended instance stays for `exec inspect` (dockerd drops them too).
const KEEP_ENDED: std::time::Duration = std::time::Duration::from_secs(300);

/// Drops instances that ended more than [`KEEP_ENDED`] ago, and, when the table is
/// crowded, those of containers that are gone.
fn prune(m: &mut HashMap<String, Instance>, engine: &engine::Engine) {
    // Looking containers up costs a store read each: only once the table fills up.
    let crowded = m.len() > MAX_INSTANCES / 2;
    m.retain(|_, i| {
        i.running
            || (i.ended.is_none_or(|t| t.elapsed() < KEEP_ENDED)
                && (!crowded || engine.container(&i.container).is_ok()))
    });
}

fn with<T>(f: impl FnOnce(&mut HashMap<String, Instance>) -> T) -> T {
    let mut g = EXECS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// `POST /containers/{id}/exec`: the schema's `ExecConfig`, each field honoured or
/// refused by name.
pub fn create(c: &mut Call<'_>, container: &str) -> ApiResult<Reply> {
    let b: bollard_stubs::models::ExecConfig = super::create::parse("exec config", c.json()?)?;
    let bollard_stubs::models::ExecConfig {
        attach_stdin,
        attach_stdout,
        attach_stderr,
        console_size,
        detach_keys,
        tty,
        env,
        cmd,
        privileged,
        user,
        working_dir,
    } = b;
    if privileged == Some(true) {
        return Err(super::create::refuse(
            "Privileged",
            true,
            "an exec runs with the container's own privileges; create the container privileged",
        ));
    }
    let v = c.engine.container(container)?;
    if !v.state.is_running() {
        return Err(ApiError::new(
            409,
            format!("Container {} is not running", v.record.id),
        ));
    }
    let command = cmd.unwrap_or_default();
    if command.is_empty() {
        return Err(ApiError::bad("No exec command specified"));
    }
    let tty = tty.unwrap_or(false);
    // Checked now, as dockerd does, so a bad value fails the create, not the start.
    if let Some(k) = detach_keys.as_deref().filter(|k| !k.is_empty()) {
        crate::detach::Escape::parse(k)?;
    }
    let console_size = match console_size.as_deref() {
        None | Some([0, 0]) | Some([]) => None,
        Some([h, w]) => Some((
            u16::try_from(*h).map_err(|_| ApiError::bad("ConsoleSize: height too large"))?,
            u16::try_from(*w).map_err(|_| ApiError::bad("ConsoleSize: width too large"))?,
        )),
        Some(_) => return Err(ApiError::bad("ConsoleSize: give [height, width]")),
    };
    let id = layerstore::random_id();
    let stdin = attach_stdin.unwrap_or(false);
    let inst = Instance {
        container: v.record.id.clone(),
        options: ExecOptions {
            command,
            interactive: stdin,
            tty,
            env: env.unwrap_or_default(),
            workdir: working_dir.filter(|s| !s.is_empty()),
            user: user.filter(|s| !s.is_empty()),
            timeout: None,
        },
        tty,
        stdin,
        stdout: attach_stdout.unwrap_or(false),
        stderr: attach_stderr.unwrap_or(false),
        detach_keys: detach_keys.filter(|k| !k.is_empty()),
        console_size,
        running: false,
        exit_code: None,
        ended: None,
        shim_pid: Arc::new(AtomicU32::new(0)),
    };
    let engine = c.engine;
    let full = with(|m| {
        prune(m, engine);
        if m.len() >= MAX_INSTANCES {
            return true;
        }
        m.insert(id.clone(), inst);
        false
    });
    if full {
        return Err(ApiError::new(
            503,
            format!("{MAX_INSTANCES} exec instances exist: wait for some to end, then retry"),
        ));
    }
    Ok(Reply::Json(201, json!({"Id": id})))
}

fn pipe() -> ApiResult<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| ApiError::new(500, format!("pipe: {e}")))
}

pub fn start(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let b = c.json()?;
    let inst = with(|m| m.get(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
    let detach = b["Detach"].as_bool().unwrap_or(false);
    with(|m| {
        if let Some(i) = m.get_mut(id) {
            i.running = true;
        }
    });
    let engine = c.engine.clone();
    let finish = move |id: &str, code: i32| {
        with(|m| {
            if let Some(i) = m.get_mut(id) {
                i.running = false;
                i.exit_code = Some(code);
                i.ended = Some(std::time::Instant::now());
            }
        })
    };
    if detach {
        let id = id.to_string();
        std::thread::spawn(move || {
            let null = || std::fs::File::open("/dev/null").ok().map(Into::into);
            let io = ExecIo {
                stdin: null(),
                stdout: std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .ok()
                    .map(Into::into),
                stderr: std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .ok()
                    .map(Into::into),
                shim_pid: Some(inst.shim_pid.clone()),
            };
            let code = engine
                .exec_with_io(&inst.container, &inst.options, io)
                .unwrap_or(126);
            finish(&id, code);
        });
        return Ok(Reply::Empty(200));
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let mut hijack = c.resp.hijack(if inst.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    })?;
    // stdin: what the client sends after the upgrade, copied into a pipe until it closes
    // its side (the command then sees end of file).
    // A terminal's input is watched for the detach keys, as for attach.
    let escape = if inst.tty {
        crate::detach::Escape::parse(
            b["DetachKeys"]
                .as_str()
                .filter(|k| !k.is_empty())
                .or(inst.detach_keys.as_deref())
                .unwrap_or(crate::detach::DEFAULT),
        )?
    } else {
        None
    };
    let stdin = match (inst.stdin, hijack.input.take()) {
        (true, Some(from_client)) => {
            let ctl = hijack.ctl.clone();
            let (in_r, in_w) = pipe()?;
            std::thread::spawn(move || {
                let mut input = super::containers::Input {
                    from: std::fs::File::from(from_client),
                    escape,
                };
                let to = std::fs::File::from(in_w);
                let done = std::sync::atomic::AtomicBool::new(false);
                if super::containers::copy_stdin(&mut input, &to, &done)
                    == super::containers::Copied::Detached
                {
                    // The client is let go; the command runs on.
                    ctl.close();
                }
            });
            Some(in_r)
        }
        _ => std::fs::File::open("/dev/null").ok().map(Into::into),
    };
    // A stream the client did not attach goes nowhere; with a terminal there is one.
    let null_out = || -> ApiResult<std::os::fd::OwnedFd> {
        Ok(std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")?
            .into())
    };
    let io = ExecIo {
        stdin,
        stdout: Some(if inst.stdout { out_w } else { null_out()? }),
        stderr: Some(if inst.stderr || inst.tty {
            err_w
        } else {
            null_out()?
        }),
        shim_pid: Some(inst.shim_pid.clone()),
    };
    if let (true, Some((rows, cols))) = (inst.tty, inst.console_size) {
        // The terminal's first size, once the command has it.
        let pid = inst.shim_pid.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                let p = pid.load(Ordering::SeqCst);
                if p != 0 && runtime::tty::resize_below(p, rows, cols).unwrap_or(false) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        });
    }
    let (container, options) = (inst.container.clone(), inst.options.clone());
    let runner = std::thread::spawn(move || engine.exec_with_io(&container, &options, io));
    // Both pipes read by their own threads; frames written under one lock.
    let out = Mutex::new(&mut hijack.output);
    let tty = inst.tty;
    std::thread::scope(|s| {
        for (fd, stream) in [(out_r, 1u8), (err_r, 2u8)] {
            let out = &out;
            s.spawn(move || {
                let mut f = std::fs::File::from(fd);
                let mut buf = vec![0u8; 32 << 10];
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut frame = Vec::with_capacity(n + 8);
                    if !tty {
                        frame.push(stream);
                        frame.extend_from_slice(&[0, 0, 0]);
                        frame.extend_from_slice(&(n as u32).to_be_bytes());
                    }
                    frame.extend_from_slice(&buf[..n]);
                    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                    if o.write_all(&frame).and_then(|_| o.flush()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let code = match runner.join() {
        Ok(Ok(code)) => code,
        _ => 126,
    };
    finish(id, code);
    hijack.finish();
    // Ends the stdin copier if the client never closed its side.
    hijack.ctl.end_input();
    Ok(Reply::Sent)
}

/// `POST /exec/{id}/resize?h=&w=`: the size of a `Tty` exec's terminal.
pub fn resize(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let inst = with(|m| m.get(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
    let (rows, cols) = size_of(c)?;
    if !inst.running {
        return Err(ApiError::new(409, format!("exec {id} is not running")));
    }
    if inst.tty {
        // The shim may not run yet, nor the command have its terminal: try for a moment.
        for _ in 0..50 {
            let pid = inst.shim_pid.load(Ordering::SeqCst);
            if pid != 0 && runtime::tty::resize_below(pid, rows, cols).unwrap_or(false) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    Ok(Reply::Empty(200))
}

/// `h` and `w` of a resize request.
pub fn size_of(c: &Call<'_>) -> ApiResult<(u16, u16)> {
    let num = |k: &str| -> ApiResult<u16> {
        c.req.param(k).unwrap_or("0").parse().map_err(|_| {
            ApiError::bad(format!("{k} must be a number of rows or columns (0-65535)"))
        })
    };
    Ok((num("h")?, num("w")?))
}

pub fn inspect(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let _ = &c;
    let inst = with(|m| m.get(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
    Ok(Reply::Json(
        200,
        json!({
            "ID": id,
            "ContainerID": inst.container,
            "Running": inst.running,
            "ExitCode": inst.exit_code,
            "ProcessConfig": {"entrypoint": inst.options.command.first(), "arguments": inst.options.command.iter().skip(1).collect::<Vec<_>>(), "tty": inst.tty, "user": inst.options.user},
            "OpenStdin": false, "OpenStdout": true, "OpenStderr": true,
            "Pid": 0,
        }),
    ))
}
