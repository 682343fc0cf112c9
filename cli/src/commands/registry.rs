//! `pull`, `push` and `login` against OCI distribution registries.

use super::Context;
use anyhow::{bail, Result};
use clap::{ArgAction, Args};
use engine::registry::Connection;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Connection flags shared by pull, push and login.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Verify TLS; `--tls-verify=false` talks plain HTTP (for a registry on loopback).
    #[arg(long = "tls-verify", default_value_t = true, action = ArgAction::Set)]
    tls_verify: bool,
    /// Credentials file (Docker's config.json `auths` format).
    #[arg(long)]
    authfile: Option<PathBuf>,
}

impl Conn {
    fn connection(&self) -> Connection {
        Connection {
            tls_verify: self.tls_verify,
            authfile: self.authfile.clone(),
            credentials: None,
        }
    }
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// os/arch[/variant] to pick from a multi-platform image (default linux/amd64).
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    conn: Conn,
    /// [REGISTRY/]NAME[:TAG|@DIGEST]
    reference: String,
}

pub fn pull(ctx: &Context, a: PullArgs) -> Result<i32> {
    let platform = a
        .platform
        .as_deref()
        .map(engine::images::parse_platform)
        .transpose()?;
    let progress: Option<engine::registry::PullProgress> = if std::io::stderr().is_terminal() {
        Some(Box::new(|d: &str, done: u64, total: u64| {
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            eprint!("\r{}: {pct:>3}% of {} bytes   ", &d[7..19], total);
            if done >= total {
                eprintln!();
            }
        }))
    } else {
        None
    };
    let loaded = ctx
        .engine
        .pull(&a.reference, platform, &a.conn.connection(), progress)?;
    match loaded.names.first() {
        Some(n) => println!("{n}"),
        None => println!("{}", loaded.id),
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PushArgs {
    #[command(flatten)]
    conn: Conn,
    /// The local image.
    image: String,
    /// Where to push it ([REGISTRY/]NAME:TAG); default: the image's own name.
    destination: Option<String>,
}

pub fn push(ctx: &Context, a: PushArgs) -> Result<i32> {
    let rep = ctx
        .engine
        .push(&a.image, a.destination.as_deref(), &a.conn.connection())?;
    for d in &rep.existing {
        eprintln!("{}: layer already exists", d.short());
    }
    for d in &rep.mounted {
        eprintln!("{}: mounted from another repository", d.short());
    }
    for d in &rep.uploaded {
        eprintln!("{}: pushed", d.short());
    }
    println!("{}", rep.digest);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[arg(short, long)]
    username: String,
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    conn: Conn,
    /// The registry host[:port].
    registry: String,
}

pub fn login(ctx: &Context, a: LoginArgs) -> Result<i32> {
    let password = match (&a.password, a.password_stdin) {
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_line(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => bail!("give the password with -p or --password-stdin (one of them)"),
    };
    ctx.engine
        .login(&a.registry, &a.username, &password, &a.conn.connection())?;
    println!("Login Succeeded");
    Ok(0)
}
