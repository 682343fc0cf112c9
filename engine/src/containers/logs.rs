//! A background container's output, read from the log files its shim writes.

use crate::error::{EngineError, Result};
use crate::Engine;
use std::io::{Read, Seek, Write};
use std::time::Duration;

/// Where each log stream goes.
pub struct LogSinks<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

impl Engine {
    /// Copies a container's logs to `sinks`; with `follow`, until it exits. Streams in
    /// 64 KiB pieces: a log can be larger than memory.
    pub fn logs(&self, key: &str, follow: bool, sinks: LogSinks<'_>) -> Result<()> {
        let bundle = self.container(key)?.bundle;
        let mut files: Vec<Option<std::fs::File>> = ["stdout", "stderr"]
            .iter()
            .map(|s| std::fs::File::open(bundle.log_path(s)).ok())
            .collect();
        let out = |e| EngineError::io("write the logs", e);
        let mut pos = [0u64; 2];
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let mut got = false;
            for (i, f) in files.iter_mut().enumerate() {
                let Some(f) = f else { continue };
                f.seek(std::io::SeekFrom::Start(pos[i]))?;
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    got = true;
                    pos[i] += n as u64;
                    let sink: &mut dyn Write = if i == 0 {
                        &mut *sinks.stdout
                    } else {
                        &mut *sinks.stderr
                    };
                    sink.write_all(&buf[..n]).map_err(out)?;
                }
                if i == 0 {
                    sinks.stdout.flush().map_err(out)?;
                }
            }
            if !follow {
                break;
            }
            if !got && !bundle.state()?.is_running() {
                break;
            }
            if !got {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}
