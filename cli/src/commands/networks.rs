//! Networks (`network create|ls|inspect|rm|prune|connect|disconnect`), `port`, and the
//! hidden `port-proxy` a running container's published ports go through.

use super::{print_json, Context, OutFormat};
use crate::output::{print_table, table};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use engine::networks::{EndpointOptions, NetworkCreate};
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a bridge network (in a network namespace of its own: no host changes).
    Create {
        /// The subnet, like 172.30.0.0/16 (default: a free one of Docker's pools).
        #[arg(long)]
        subnet: Option<String>,
        /// No default route for its containers.
        #[arg(long)]
        internal: bool,
        /// A label K=V (repeatable).
        #[arg(long)]
        label: Vec<String>,
        /// The driver (only bridge).
        #[arg(short, long)]
        driver: Option<String>,
        name: String,
    },
    /// List networks.
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: OutFormat,
    },
    /// Show networks as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (refused while a container is on one).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every user-defined network no container is on.
    Prune {
        /// Do not ask (strata never asks; accepted for Docker's scripts).
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network.
    Connect {
        /// Another name for the container on this network (repeatable).
        #[arg(long)]
        alias: Vec<String>,
        /// Its IPv4 address on this network.
        #[arg(long)]
        ip: Option<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Accepted for Docker's scripts.
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
}

/// The first 12 characters of an id (all of a shorter one).
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn labels(list: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if !l.is_empty() => Ok((l.to_string(), String::new())),
            _ => bail!("invalid label {l:?}: use KEY=VALUE"),
        })
        .collect()
}

pub fn network(ctx: &Context, cmd: NetworkCmd) -> Result<i32> {
    let e = &ctx.engine;
    match cmd {
        NetworkCmd::Create {
            subnet,
            internal,
            label,
            driver,
            name,
        } => {
            let n = e.network_create(&NetworkCreate {
                name,
                driver,
                subnet,
                internal,
                attachable: false,
                labels: labels(&label)?,
            })?;
            println!("{}", n.id);
        }
        NetworkCmd::Ls { quiet, format } => {
            let all = e.network_list()?;
            if format == OutFormat::Json {
                print_json(&json!(all
                    .iter()
                    .map(|n| e.network_json(n))
                    .collect::<Vec<_>>()))?;
            } else if quiet {
                all.iter().for_each(|n| println!("{}", short(&n.id)));
            } else {
                let mut t = table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET"]);
                for n in &all {
                    t.add_row(vec![
                        short(&n.id).to_string(),
                        n.name.clone(),
                        n.driver.clone(),
                        "local".into(),
                        n.subnet().map(|s| s.to_string()).unwrap_or_default(),
                    ]);
                }
                print_table(&t);
            }
        }
        NetworkCmd::Inspect { names } => {
            let out = names
                .iter()
                .map(|n| e.network(n).map(|n| e.network_json(&n)))
                .collect::<engine::Result<Vec<_>>>()?;
            print_json(&json!(out))?;
        }
        NetworkCmd::Rm { names } => {
            for n in &names {
                e.network_remove(n)?;
                println!("{n}");
            }
        }
        NetworkCmd::Prune { .. } => {
            let gone = e.network_prune()?;
            if !gone.is_empty() {
                println!("Deleted Networks:");
                gone.iter().for_each(|n| println!("{n}"));
            }
        }
        NetworkCmd::Connect {
            alias,
            ip,
            network,
            container,
        } => e.network_connect(
            &container,
            &EndpointOptions {
                network,
                aliases: alias,
                ip,
            },
        )?,
        NetworkCmd::Disconnect {
            network, container, ..
        } => e.network_disconnect(&container, &network)?,
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PortArgs {
    container: String,
    /// Only this port: PORT[/PROTO].
    port: Option<String>,
}

/// `strata port`: `80/tcp -> 127.0.0.1:8080`, or the addresses of one port.
pub fn port(ctx: &Context, a: PortArgs) -> Result<i32> {
    let ports = ctx.engine.published_ports(&a.container)?;
    let want = a
        .port
        .as_deref()
        .map(network::ports::port_key)
        .transpose()?
        .map(|(p, proto)| format!("{p}/{}", proto.name()));
    let mut any = false;
    for (key, bindings) in &ports {
        if want.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in bindings {
            any = true;
            let host = if b.host_ip.contains(':') {
                format!("[{}]:{}", b.host_ip, b.host_port)
            } else {
                format!("{}:{}", b.host_ip, b.host_port)
            };
            if want.is_some() {
                println!("{host}");
            } else {
                println!("{key} -> {host}");
            }
        }
    }
    if let (Some(w), false) = (want, any) {
        bail!("no public port '{w}' published for {}", a.container);
    }
    Ok(0)
}

/// `port-proxy`'s arguments, passed through: the network crate defines and reads them
/// (`network::proxy_args`), as the engine writes them.
#[derive(Args, Debug)]
pub struct PortProxyArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<std::ffi::OsString>,
}

pub fn port_proxy(a: PortProxyArgs) -> Result<i32> {
    let a = network::proxy_args::ProxyArgs::from_args(&a.args)?;
    Ok(network::proxy::serve(
        &a.netns,
        a.target,
        &a.forwards,
        std::io::stdout(),
        std::io::stdin(),
    ))
}
