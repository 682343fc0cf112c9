//! Storage verbs: info, fsck, system df, system prune.

use super::{print_json, Context, OutFormat};
use crate::output::{human_size, print_table, table};
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
}

pub fn info(ctx: &Context, a: InfoArgs) -> Result<i32> {
    let info = ctx.engine.info()?;
    if a.format == OutFormat::Json {
        print_json(&serde_json::to_value(&info)?)?;
        return Ok(0);
    }
    println!("Storage Driver: {}", info.driver);
    for (k, v) in &info.driver_status {
        println!(" {k}: {v}");
    }
    println!("Data Root: {}", info.data_root.display());
    println!("Images: {}", info.images);
    println!("Containers: {}", info.containers);
    println!("Security Options:");
    for o in &info.security_options {
        println!(" {o}");
    }
    println!("Drivers:");
    for d in &info.drivers {
        match &d.reason {
            None => println!(" {}: supported", d.name),
            Some(e) => println!(" {}: not supported: {e}", d.name),
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct FsckArgs {
    /// Drop what cannot be trusted and free what nothing uses.
    #[arg(long)]
    repair: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
}

pub fn fsck(ctx: &Context, a: FsckArgs) -> Result<i32> {
    let r = ctx.engine.fsck(a.repair)?;
    if a.format == OutFormat::Json {
        print_json(&serde_json::to_value(&r)?)?;
    } else {
        for p in &r.problems {
            println!("problem: {p}");
        }
        for n in &r.notes {
            println!("note: {n}");
        }
        for x in &r.repaired {
            println!("repaired: {x}");
        }
        println!(
            "checked {} blobs, {} layers, {} images: {}",
            r.blobs,
            r.layers,
            r.images,
            if r.ok() {
                "ok"
            } else {
                "PROBLEMS FOUND (run `strata fsck --repair`)"
            }
        );
    }
    Ok(if r.ok() { 0 } else { 1 })
}

#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Disk usage of images, layers and containers.
    Df(DfArgs),
    /// Free layers and blobs no image or container uses.
    Prune,
}

#[derive(Args, Debug)]
pub struct DfArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
}

pub fn system(ctx: &Context, cmd: SystemCmd) -> Result<i32> {
    match cmd {
        SystemCmd::Prune => {
            let (l, b) = ctx.engine.prune()?;
            println!("Deleted {l} layer(s) and {b} blob(s)");
            Ok(0)
        }
        SystemCmd::Df(a) => {
            let rows = ctx.engine.disk_usage()?;
            if a.format == OutFormat::Json {
                print_json(&serde_json::to_value(&rows)?)?;
                return Ok(0);
            }
            let mut t = table(&["TYPE", "TOTAL", "SIZE"]);
            for r in &rows {
                t.add_row(vec![
                    r.kind.clone(),
                    r.total.to_string(),
                    human_size(r.size),
                ]);
            }
            print_table(&t);
            Ok(0)
        }
    }
}

/// `unionfs-serve`'s arguments, passed through: the union crate defines and reads them
/// (`unionfs::serve_args`), as the aufs driver writes them.
#[derive(Args, Debug)]
pub struct UnionfsServeArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<std::ffi::OsString>,
}

/// Mounts one union and serves it until it is unmounted; prints `ready PID` once mounted.
pub fn unionfs_serve(a: UnionfsServeArgs) -> Result<i32> {
    let opts = unionfs::ServeOptions::from_args(&a.args)?;
    let mut out = std::io::stdout();
    unionfs::serve(&opts, &mut out)
        .with_context(|| format!("serving the union on {}", opts.mountpoint.display()))?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The driver to move everything to.
    #[arg(long)]
    to: String,
    /// The driver to move from (default: the one in use).
    #[arg(long)]
    from: Option<String>,
    /// Print what would move and the space needed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove the source driver's data once everything moved.
    #[arg(long)]
    prune: bool,
}

/// `migrate`: every image layer and stopped container to another driver.
pub fn migrate(ctx: &Context, a: MigrateArgs) -> Result<i32> {
    let out = ctx
        .engine
        .migrate(&a.to, a.from.as_deref(), a.dry_run, a.prune, &mut |plan| {
            println!(
                "{} -> {}: {} image layer(s), {} container(s), {} needed",
                plan.from,
                plan.to,
                plan.layers.len(),
                plan.containers.len(),
                human_size(plan.bytes)
            )
        })?;
    let Some(done) = out.done else {
        for c in &out.plan.containers {
            println!("container {c}");
        }
        return Ok(0);
    };
    println!(
        "migrated {} layer(s) and {} container(s) from {} to {}{}",
        done.layers.len(),
        done.containers.len(),
        done.from,
        done.to,
        if a.prune {
            "; the source driver's data was removed"
        } else {
            ""
        }
    );
    Ok(0)
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Only events at or after this time (seconds since the epoch).
    #[arg(long)]
    since: Option<u64>,
    /// Only events at or before this time (seconds since the epoch).
    #[arg(long)]
    until: Option<u64>,
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
}

/// `events`: what happened to containers and images, oldest first.
pub fn events(ctx: &Context, a: EventsArgs) -> Result<i32> {
    let evs = ctx.engine.events(a.since, a.until)?;
    if a.format == OutFormat::Json {
        print_json(&serde_json::to_value(&evs)?)?;
        return Ok(0);
    }
    for e in &evs {
        let secs = (e.time_nano / 1_000_000_000) as u64;
        let name = if e.name.is_empty() {
            String::new()
        } else {
            format!(" (name={})", e.name)
        };
        println!(
            "{} {} {} {}{name}",
            layerstore::export::rfc3339(secs),
            e.typ,
            e.action,
            e.id
        );
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Where to listen: unix:///path (default unix:///run/strata.sock) or
    /// tcp://127.0.0.1:PORT (loopback only; repeatable).
    #[arg(short = 'H', long = "host")]
    hosts: Vec<String>,
    /// Serve TCP hosts over TLS, accepting only clients with a certificate signed by
    /// --tlscacert.
    #[arg(long)]
    tlsverify: bool,
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    #[arg(long)]
    tlscert: Option<PathBuf>,
    #[arg(long)]
    tlskey: Option<PathBuf>,
}

/// `daemon`: serves the Docker Engine API until stopped.
pub fn daemon(ctx: &Context, a: DaemonArgs) -> Result<i32> {
    let tls = match (a.tlsverify, a.tlscacert, a.tlscert, a.tlskey) {
        (false, None, None, None) => None,
        (true, Some(ca), Some(cert), Some(key)) => Some(daemon::tls::TlsFiles { ca, cert, key }),
        _ => anyhow::bail!(
            "TLS needs all of --tlsverify, --tlscacert, --tlscert and --tlskey (client certificates are always verified)"
        ),
    };
    let opts = daemon::DaemonOptions {
        hosts: a.hosts,
        tls,
    };
    daemon::serve(ctx.engine.clone(), &opts).context("serving the Docker Engine API")?;
    Ok(0)
}
