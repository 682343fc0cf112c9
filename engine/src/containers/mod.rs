//! Containers: create, start (attached or under a shim), stop, kill, wait, logs, exec,
//! inspect, remove, and their filesystem (mount, diff, commit, export).

pub mod bundle;
pub mod control;
pub mod create;
pub mod exec;
pub mod fs;
pub mod health;
mod hostconfig;
pub mod inspect;
pub mod logging;
pub mod logs;
pub mod mounts;
pub mod options;
pub mod processes;
pub mod remove;
pub mod start;
pub mod status;
pub mod user;
pub mod watch;

pub use bundle::Bundle;
pub use control::{parse_signal, UpdateOptions};
pub use exec::{ExecIo, ExecOptions};
pub use inspect::ContainerView;
pub use logging::LogConfig;
pub use logs::{LogOptions, LogSinks};
pub use options::{CpuLimit, CreateOptions, RestartPolicy, SecurityOptions};
pub use start::{Attached, StartOptions};
