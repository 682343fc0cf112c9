//! Process limits a long-running server sets from what it may use, not from a default.

/// Raises the soft descriptor limit to the hard one and returns it: servers (the daemon,
/// the port proxy) size their connection caps from it, so the caps hold before the
/// kernel's EMFILE does.
pub fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if let Some(hard) = lim.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(1024)
}
