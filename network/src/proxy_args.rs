//! The command line of the port proxy process (`strata port-proxy`): written by the engine
//! when a container with published ports starts and read back by the proxy, both from this
//! one definition. The `strata` binary only dispatches the subcommand.

use crate::error::{NetError, Result};
use crate::ports::Forward;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The subcommand of the `strata` binary that runs [`crate::proxy::serve`].
pub const SUBCOMMAND: &str = "port-proxy";

/// What one proxy serves: the network's namespace, the container's address, the ports.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyArgs {
    pub netns: PathBuf,
    pub target: Ipv4Addr,
    pub forwards: Vec<Forward>,
}

impl ProxyArgs {
    /// The arguments after [`SUBCOMMAND`]: `--netns FILE --target ADDR [--forward F]...`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec![
            "--netns".into(),
            self.netns.clone().into(),
            "--target".into(),
            self.target.to_string().into(),
        ];
        for f in &self.forwards {
            out.push("--forward".into());
            out.push(f.arg().into());
        }
        out
    }

    /// Reads [`ProxyArgs::to_args`]'s form.
    pub fn from_args(args: &[OsString]) -> Result<ProxyArgs> {
        let bad = |why: &str| NetError::Invalid(format!("port-proxy: {why}"));
        let mut it = args.iter();
        let (mut netns, mut target, mut forwards) = (None, None, Vec::new());
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| bad("an option needs a value"));
            match a.to_str() {
                Some("--netns") => netns = Some(PathBuf::from(value()?)),
                Some("--target") => {
                    let v = value()?;
                    target = Some(
                        v.to_str()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| bad("--target is an IPv4 address"))?,
                    )
                }
                Some("--forward") => {
                    let v = value()?;
                    forwards.push(Forward::parse_arg(
                        v.to_str().ok_or_else(|| bad("--forward is text"))?,
                    )?)
                }
                _ => return Err(bad("unknown argument")),
            }
        }
        Ok(ProxyArgs {
            netns: netns.ok_or_else(|| bad("--netns is needed"))?,
            target: target.ok_or_else(|| bad("--target is needed"))?,
            forwards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_args_read_back_as_written() {
        let a = ProxyArgs {
            netns: "/run/ns".into(),
            target: Ipv4Addr::new(172, 17, 0, 2),
            forwards: vec![Forward::parse_arg("tcp:127.0.0.1:8080=80").unwrap()],
        };
        assert_eq!(ProxyArgs::from_args(&a.to_args()).unwrap(), a);
        assert!(ProxyArgs::from_args(&["--target".into(), "x".into()]).is_err());
    }
}
