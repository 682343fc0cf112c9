//! Container storage verbs: create, mount, umount, rm, ps, diff, commit, export.

use super::{print_json, Context, OutFormat};
use crate::output::{ago, print_table, table};
use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    opts: super::run::ContainerOpts,
}

pub fn create(ctx: &Context, a: CreateArgs) -> Result<i32> {
    let c = ctx.engine.create_container(&a.opts.to_create(false)?)?;
    println!("{}", c.id);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// Container name or id.
    container: String,
}

pub fn mount(ctx: &Context, a: NameArg) -> Result<i32> {
    let p = ctx
        .engine
        .mount(&a.container)
        .with_context(|| format!("mount {}", a.container))?;
    println!("{}", p.display());
    Ok(0)
}

pub fn umount(ctx: &Context, a: NameArg) -> Result<i32> {
    ctx.engine
        .umount(&a.container)
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
    // Running containers are refused (or with -f stopped) before anything is removed.
    for c in &a.containers {
        if let Err(e) = ctx.engine.stop_for_removal(c, a.force) {
            eprintln!("strata: rm {c}: {e}");
            return Ok(125);
        }
    }
    let mut failed = false;
    for c in &a.containers {
        match ctx.engine.remove_container(c, a.force) {
            Ok(_) => println!("{c}"),
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

pub fn ps(ctx: &Context, a: PsArgs) -> Result<i32> {
    if a.format == OutFormat::Json {
        return print_json(&json!(ctx.engine.containers_json(a.all)?)).map(|_| 0);
    }
    let all = ctx.engine.containers(a.all)?;
    if a.quiet {
        all.iter().for_each(|v| println!("{}", &v.record.id[..12]));
        return Ok(0);
    }
    let mut t = table(&["CONTAINER ID", "IMAGE", "CREATED", "STATUS", "NAMES"]);
    for v in &all {
        let c = &v.record;
        t.add_row(vec![
            c.id[..12].to_string(),
            c.image_ref.clone(),
            ago(c.created),
            v.status_text(),
            c.name.clone(),
        ]);
    }
    print_table(&t);
    Ok(0)
}

pub fn diff(ctx: &Context, a: NameArg) -> Result<i32> {
    let changes = ctx
        .engine
        .diff(&a.container)
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
    /// A Dockerfile instruction for the image's config, e.g. 'CMD ["/bin/sh"]' (repeatable).
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Container name or id.
    container: String,
    /// Name for the new image.
    reference: Option<String>,
}

pub fn commit(ctx: &Context, a: CommitArgs) -> Result<i32> {
    let opts = layerstore::commit::CommitOptions {
        reference: a.reference.clone(),
        message: a.message.clone(),
        author: a.author.clone(),
    };
    let id = ctx
        .engine
        .commit(&a.container, &opts, &a.change)
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
    ctx.engine.export(&a.container, &a.output)?;
    Ok(0)
}
