//! Container storage verbs: create, mount, umount, rm, ps, diff.

use super::{print_json, Context, OutFormat};
use crate::output::{ago, print_table, table};
use anyhow::{Context as _, Result};
use clap::Args;
use layerstore::containers::ContainerRecord;
use layerstore::Store;
use serde_json::json;

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    opts: super::run::ContainerOpts,
}

pub fn create(ctx: &Context, a: CreateArgs) -> Result<i32> {
    let store = ctx.store()?;
    let c = super::run::create_container(ctx, &store, &a.opts, false)?;
    println!("{}", c.id);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// Container name or id.
    container: String,
}

pub fn mount(ctx: &Context, a: NameArg) -> Result<i32> {
    let store = ctx.store()?;
    let p = store
        .mount_container(&a.container)
        .with_context(|| format!("mount {}", a.container))?;
    println!("{}", p.display());
    Ok(0)
}

pub fn umount(ctx: &Context, a: NameArg) -> Result<i32> {
    let store = ctx.store()?;
    store
        .umount_container(&a.container)
        .with_context(|| format!("umount {}", a.container))?;
    println!("{}", a.container);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Remove even if mounted.
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn rm(ctx: &Context, a: RmArgs) -> Result<i32> {
    // Running containers are stopped (with -f) before the store is locked: their runner
    // needs the store to unmount them.
    for c in &a.containers {
        if let Ok((rec, _dir, st)) = super::run::state_of(ctx, c) {
            if st.is_running() {
                if !a.force {
                    eprintln!(
                        "strata: rm {c}: container {} is running: stop it first, or rm -f",
                        rec.name
                    );
                    return Ok(125);
                }
                super::run::stop_one(ctx, c, 0)?;
            }
        }
    }
    let store = ctx.store()?;
    let mut failed = false;
    for c in &a.containers {
        let id = store.resolve_container(c).map(|r| r.id);
        match store.remove_container(c, a.force) {
            Ok(_) => {
                if let Ok(id) = id {
                    let _ = std::fs::remove_dir_all(super::run::bundle(&store, &id));
                }
                println!("{c}")
            }
            Err(e) => {
                eprintln!("strata: rm {c}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 125 } else { 0 })
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// All containers, not only running ones.
    #[arg(short, long)]
    all: bool,
    #[arg(short, long)]
    quiet: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
}

/// The JSON `inspect` prints for a container.
pub fn container_json(store: &Store, c: &ContainerRecord) -> Result<serde_json::Value> {
    let st = runtime::state::State::load(&super::run::bundle(store, &c.id)).unwrap_or_default();
    container_json_with(store, c, &st)
}

/// [`container_json`] with the runtime state already read.
fn container_json_with(
    store: &Store,
    c: &ContainerRecord,
    st: &runtime::state::State,
) -> Result<serde_json::Value> {
    let mounted = if c.driver == store.driver.name() && store.driver.exists(&c.layer) {
        store.driver.mount_count(&c.layer)?
    } else {
        0
    };
    let status = st.effective_status().to_string();
    let time = |t: Option<f64>| t.map(|t| layerstore::export::rfc3339(t as u64));
    let host_config: serde_json::Value =
        std::fs::read(super::run::bundle(store, &c.id).join("hostconfig.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| json!({}));
    Ok(json!({
        "Id": c.id,
        "Name": c.name,
        "Image": c.image.to_string(),
        "Config": {"Image": c.image_ref},
        "Created": layerstore::export::rfc3339(c.created),
        "State": {
            "Status": if status.is_empty() { "created".to_string() } else { status.clone() },
            "Running": status == "running",
            "Pid": if status == "running" { st.pid } else { 0 },
            "ExitCode": st.exit_code.unwrap_or(0),
            "OOMKilled": st.oom_killed,
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": time(st.started_at),
            "FinishedAt": time(st.finished_at),
        },
        "GraphDriver": {"Name": c.driver, "Data": {"Layer": c.layer, "Mounts": mounted}},
        "HostConfig": host_config,
    }))
}

pub fn ps(ctx: &Context, a: PsArgs) -> Result<i32> {
    let store = ctx.store_ro()?;
    let mut all: Vec<ContainerRecord> = store
        .containers
        .all()?
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    all.sort_by_key(|c| std::cmp::Reverse(c.created));
    let states: std::collections::HashMap<String, runtime::state::State> = all
        .iter()
        .map(|c| {
            let st =
                runtime::state::State::load(&super::run::bundle(&store, &c.id)).unwrap_or_default();
            (c.id.clone(), st)
        })
        .collect();
    if !a.all {
        all.retain(|c| states.get(&c.id).is_some_and(|s| s.is_running()));
    }
    if a.format == OutFormat::Json {
        let v: Vec<_> = all
            .iter()
            .map(|c| match states.get(&c.id) {
                Some(st) => container_json_with(&store, c, st),
                None => container_json(&store, c),
            })
            .collect::<Result<_>>()?;
        return print_json(&json!(v)).map(|_| 0);
    }
    if a.quiet {
        all.iter().for_each(|c| println!("{}", &c.id[..12]));
        return Ok(0);
    }
    let mut t = table(&["CONTAINER ID", "IMAGE", "CREATED", "STATUS", "NAMES"]);
    for c in &all {
        t.add_row(vec![
            c.id[..12].to_string(),
            c.image_ref.clone(),
            ago(c.created),
            states
                .get(&c.id)
                .map(super::run::status_text)
                .unwrap_or_else(|| "Created".into()),
            c.name.clone(),
        ]);
    }
    print_table(&t);
    Ok(0)
}

pub fn diff(ctx: &Context, a: NameArg) -> Result<i32> {
    let store = ctx.store()?;
    let c = store
        .resolve_container(&a.container)
        .with_context(|| format!("diff {}", a.container))?;
    let changes = store
        .driver
        .changes(&c.layer)
        .with_context(|| format!("diff {}", a.container))?;
    for ch in changes {
        println!("{} /{}", ch.kind.letter(), ch.path.display());
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Commit message (recorded in the image history).
    #[arg(short, long)]
    message: Option<String>,
    /// Author of the new image.
    #[arg(short, long)]
    author: Option<String>,
    /// Container name or id.
    container: String,
    /// Name for the new image.
    reference: Option<String>,
}

pub fn commit(ctx: &Context, a: CommitArgs) -> Result<i32> {
    let store = ctx.store()?;
    let opts = layerstore::commit::CommitOptions {
        reference: a.reference.clone(),
        message: a.message.clone(),
        author: a.author.clone(),
    };
    let id = layerstore::commit::commit(&store, &a.container, &opts)
        .with_context(|| format!("commit {}", a.container))?;
    println!("{id}");
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The tar file to write.
    #[arg(short, long)]
    output: std::path::PathBuf,
    /// Container name or id.
    container: String,
}

/// `export`: the container's whole filesystem as one tar (what `import` takes back).
pub fn export(ctx: &Context, a: ExportArgs) -> Result<i32> {
    let store = ctx.store()?;
    let root = store
        .mount_container(&a.container)
        .with_context(|| format!("export {}", a.container))?;
    let result = layerstore::export::export_rootfs(&root, &a.output);
    store.umount_container(&a.container)?;
    result.with_context(|| format!("export {} to {}", a.container, a.output.display()))?;
    Ok(0)
}
