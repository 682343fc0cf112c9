//! `pull`, `push` and `login` against OCI distribution registries.

use super::Context;
use anyhow::{bail, Context as _, Result};
use clap::{ArgAction, Args};
use registry::auth::{default_path, AuthFile};
use registry::{Client, Reference};
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
    fn authfile(&self) -> PathBuf {
        self.authfile.clone().unwrap_or_else(default_path)
    }

    fn client(&self, registry_host: &str) -> Result<Client> {
        let auth = AuthFile::load(&self.authfile())?;
        Ok(Client::new(
            registry_host,
            self.tls_verify,
            auth.get(registry_host),
        ))
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
    let r = Reference::parse(&a.reference)?;
    let platform = match &a.platform {
        Some(p) => Some(
            layerstore::spec::Platform::parse(p)
                .with_context(|| format!("invalid --platform {p:?}: use os/arch[/variant]"))?,
        ),
        None => None,
    };
    let client = a.conn.client(&r.registry)?;
    let mut store = ctx.store()?;
    let tty = std::io::stderr().is_terminal();
    let progress: Option<registry::pull::Progress> = if tty {
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
    if tty {
        store.set_progress(Box::new(|what, done, total| {
            eprint!("\r{what} {done}/{total}");
            if done >= total {
                eprintln!();
            }
        }));
    }
    let opts = registry::pull::PullOptions { platform, progress };
    let loaded = registry::pull::pull(&store, &client, &r, &opts)
        .with_context(|| format!("pull {}", a.reference))?;
    if let Ok(Some(img)) = store.images.get(loaded.id.hex()) {
        let layers: Vec<layerstore::Digest> = img
            .layers
            .iter()
            .filter_map(|c| store.layer(c).ok().map(|l| l.blob))
            .collect();
        registry::push::note_pulled(&store, &r.registry, &r.repository, &layers);
    }
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
    let dest = a.destination.clone().unwrap_or_else(|| a.image.clone());
    let r = Reference::parse(&dest)?;
    let client = a.conn.client(&r.registry)?;
    let store = ctx.store()?;
    let rep = registry::push::push(&store, &client, &a.image, &r)
        .with_context(|| format!("push {dest}"))?;
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

pub fn login(_ctx: &Context, a: LoginArgs) -> Result<i32> {
    let password = match (&a.password, a.password_stdin) {
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_line(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => bail!("give the password with -p or --password-stdin (one of them)"),
    };
    let client = Client::new(
        &a.registry,
        a.conn.tls_verify,
        Some((a.username.clone(), password.clone())),
    );
    client
        .ping()
        .with_context(|| format!("login to {}", a.registry))?;
    let mut auth = AuthFile::load(&a.conn.authfile())?;
    auth.set(&a.registry, &a.username, &password)?;
    println!("Login Succeeded");
    Ok(0)
}
