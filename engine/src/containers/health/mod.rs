//! Health checks: Docker's `HEALTHCHECK` and `Healthcheck`, run by the container's shim
//! as execs in the container, with `State.Health`, `health_status` events and the
//! `(healthy)` of `ps`.

pub mod config;
pub mod monitor;
pub mod record;

pub use config::HealthConfig;
pub use monitor::Monitor;
pub use record::{Health, ProbeResult};
