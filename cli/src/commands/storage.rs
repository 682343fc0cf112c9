//! Storage verbs: info, fsck, system df, system prune.

use super::{print_json, Context, OutFormat};
use crate::output::{human_size, print_table, table};
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
}

pub fn info(ctx: &Context, a: InfoArgs) -> Result<i32> {
    let store = ctx.store_ro()?;
    let status = store.driver.status();
    let probes = layerstore::store::probe_drivers(&ctx.data_root, &ctx.driver_opts);
    if a.format == OutFormat::Json {
        let drivers: Vec<_> = probes
            .iter()
            .map(|(n, r)| json!({"Name": n, "Supported": r.is_ok(), "Reason": r.as_ref().err()}))
            .collect();
        let st: serde_json::Map<String, serde_json::Value> =
            status.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        print_json(&json!({
            "Driver": store.driver.name(),
            "DriverStatus": st,
            "DataRoot": ctx.data_root,
            "Images": store.images.keys()?.len(),
            "Containers": store.containers.keys()?.len(),
            "Drivers": drivers,
            "SecurityOptions": runtime::security::host_security_options(),
        }))?;
        return Ok(0);
    }
    println!("Storage Driver: {}", store.driver.name());
    for (k, v) in &status {
        println!(" {k}: {v}");
    }
    println!("Data Root: {}", ctx.data_root.display());
    println!("Images: {}", store.images.keys()?.len());
    println!("Containers: {}", store.containers.keys()?.len());
    println!("Security Options:");
    for o in runtime::security::host_security_options() {
        println!(" {o}");
    }
    println!("Drivers:");
    for (n, r) in probes {
        match r {
            Ok(()) => println!(" {n}: supported"),
            Err(e) => println!(" {n}: not supported: {e}"),
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
    let store = if a.repair {
        ctx.store()?
    } else {
        ctx.store_ro()?
    };
    let r = layerstore::fsck::fsck(&store, a.repair)?;
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
            let store = ctx.store()?;
            let (l, b) = store.gc()?;
            println!("Deleted {l} layer(s) and {b} blob(s)");
            Ok(0)
        }
        SystemCmd::Df(a) => {
            let store = ctx.store_ro()?;
            let images = store.images.all()?;
            let img_size: u64 = store.layers.all()?.iter().map(|(_, l)| l.size).sum();
            let blob_size: u64 = store
                .blobs
                .list()?
                .iter()
                .filter_map(|d| store.blobs.path(d).metadata().ok())
                .map(|m| m.len())
                .sum();
            let containers = store.containers.all()?;
            let mut ctr_size = 0;
            for (_, c) in &containers {
                if c.driver == store.driver.name() && store.driver.exists(&c.layer) {
                    // A container's size is what it wrote: its added and changed files.
                    let root = store.driver.diff_dir(&c.layer)?;
                    for ch in store.driver.changes(&c.layer)? {
                        if ch.kind != drivers::ChangeKind::Deleted {
                            let md = std::fs::symlink_metadata(root.join(&ch.path));
                            ctr_size += md
                                .map(|m| if m.is_file() { m.len() } else { 0 })
                                .unwrap_or(0);
                        }
                    }
                }
            }
            if a.format == OutFormat::Json {
                print_json(&json!([
                    {"Type": "Images", "Total": images.len(), "Size": img_size},
                    {"Type": "Containers", "Total": containers.len(), "Size": ctr_size},
                    {"Type": "Blobs", "Total": store.blobs.list()?.len(), "Size": blob_size},
                ]))?;
                return Ok(0);
            }
            let mut t = table(&["TYPE", "TOTAL", "SIZE"]);
            t.add_row(vec![
                "Images".into(),
                images.len().to_string(),
                human_size(img_size),
            ]);
            t.add_row(vec![
                "Containers".into(),
                containers.len().to_string(),
                human_size(ctr_size),
            ]);
            t.add_row(vec![
                "Blobs".into(),
                store.blobs.list()?.len().to_string(),
                human_size(blob_size),
            ]);
            print_table(&t);
            Ok(0)
        }
    }
}

#[derive(Args, Debug)]
pub struct UnionfsServeArgs {
    /// The writable branch.
    #[arg(long)]
    upper: PathBuf,
    /// A read-only branch (repeatable, nearest first).
    #[arg(long = "lower")]
    lowers: Vec<PathBuf>,
    /// Serve reads and writes in this process instead of handing files to the kernel.
    #[arg(long)]
    no_passthrough: bool,
    /// Where to mount the union.
    mountpoint: PathBuf,
}

/// Mounts one union and serves it until it is unmounted; prints `ready PID` once mounted.
pub fn unionfs_serve(a: UnionfsServeArgs) -> Result<i32> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    let opts = unionfs::ServeOptions {
        upper: a.upper,
        lowers: a.lowers,
        mountpoint: a.mountpoint,
        threads,
        passthrough: !a.no_passthrough,
    };
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
    let mut ctx2 = Context {
        data_root: ctx.data_root.clone(),
        driver: a.from.clone().or_else(|| ctx.driver.clone()),
        driver_opts: ctx.driver_opts.clone(),
        container_size: None,
        limits: ctx.limits,
    };
    if ctx2.driver.as_deref() == Some(a.to.as_str()) && a.from.is_none() {
        ctx2.driver = None;
    }
    let mut store = ctx2.store()?;
    let plan = layerstore::migrate::plan(&store, &a.to)?;
    println!(
        "{} -> {}: {} image layer(s), {} container(s), {} needed",
        plan.from,
        plan.to,
        plan.layers.len(),
        plan.containers.len(),
        human_size(plan.bytes)
    );
    if a.dry_run {
        for c in &plan.containers {
            println!("container {c}");
        }
        return Ok(0);
    }
    let running: Vec<String> = store
        .containers
        .all()?
        .into_iter()
        .filter(|(_, c)| {
            runtime::state::State::load(&super::run::bundle(&store, &c.id))
                .map(|s| s.is_running())
                .unwrap_or(false)
        })
        .map(|(_, c)| c.name)
        .collect();
    let done = layerstore::migrate::migrate(&mut store, &a.to, &ctx.driver_opts, &running, a.prune)
        .with_context(|| format!("migrate to {}", a.to))?;
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
