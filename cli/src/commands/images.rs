//! Image verbs: load, save, import, images, tag, rmi, history, inspect.

use super::{print_json, Context, OutFormat};
use crate::output::{ago, human_size, print_table, table};
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The archive or OCI layout directory to read.
    #[arg(short, long)]
    input: PathBuf,
    /// os/arch[/variant] to pick from multi-platform images (default linux/amd64).
    #[arg(long)]
    platform: Option<String>,
    /// Print only image ids.
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(ctx: &Context, a: LoadArgs) -> Result<i32> {
    let platform = a
        .platform
        .as_deref()
        .map(engine::images::parse_platform)
        .transpose()?;
    let loaded = ctx.engine.load(&a.input, platform)?;
    for l in loaded {
        if a.quiet || l.names.is_empty() {
            println!("Loaded image ID: {}", l.id);
        }
        if !a.quiet {
            for n in &l.names {
                println!("Loaded image: {n}");
            }
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Where to write: a file (docker, or oci ending in .tar) or a directory (oci).
    #[arg(short, long)]
    output: PathBuf,
    /// docker (docker-archive) or oci (OCI image layout).
    #[arg(long, default_value = "docker")]
    format: String,
    /// Images to save.
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn save(ctx: &Context, a: SaveArgs) -> Result<i32> {
    let format = engine::images::parse_save_format(&a.format)?;
    ctx.engine.save(&a.images, &a.output, format)?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A rootfs tarball (plain, gzip or zstd).
    file: PathBuf,
    /// The name to give the image.
    reference: String,
    /// A Dockerfile instruction for the image's config, e.g. 'CMD ["/bin/sh"]' (repeatable:
    /// CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL).
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
}

pub fn import(ctx: &Context, a: ImportArgs) -> Result<i32> {
    let l = ctx.engine.import(&a.file, &a.reference, &a.change)?;
    println!("{}", l.id);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Also a build's intermediate images.
    #[arg(short, long)]
    all: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
}

pub fn images(ctx: &Context, a: ImagesArgs) -> Result<i32> {
    let all = ctx.engine.list_images(a.all)?;
    if a.quiet {
        all.iter().for_each(|img| println!("{}", img.short_id));
        return Ok(0);
    }
    if a.format == OutFormat::Json {
        print_json(&json!(all))?;
        return Ok(0);
    }
    let mut t = table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    for img in &all {
        let created = img
            .created
            .as_deref()
            .and_then(engine::images::parse_rfc3339)
            .map(ago)
            .unwrap_or_else(|| "N/A".into());
        let repo_tags: Vec<(String, String)> = if img.names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            img.names
                .iter()
                .map(|n| {
                    let (r, t) = layerstore::refs::split(n);
                    (r.to_string(), t.to_string())
                })
                .collect()
        };
        for (repo, tag) in repo_tags {
            t.add_row(vec![
                repo,
                tag,
                img.short_id.clone(),
                created.clone(),
                human_size(img.size),
            ]);
        }
    }
    print_table(&t);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct TagArgs {
    source: String,
    target: String,
}

pub fn tag(ctx: &Context, a: TagArgs) -> Result<i32> {
    ctx.engine.tag(&a.source, &a.target)?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Remove even when tagged several times.
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn rmi(ctx: &Context, a: RmiArgs) -> Result<i32> {
    let mut failed = false;
    for i in &a.images {
        match ctx.engine.remove_image(i, a.force) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("strata: rmi {i}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 125 } else { 0 })
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    image: String,
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
}

pub fn history(ctx: &Context, a: HistoryArgs) -> Result<i32> {
    let (short_id, rows) = ctx.engine.history(&a.image)?;
    if a.format == OutFormat::Json {
        return print_json(&json!(rows)).map(|_| 0);
    }
    let mut t = table(&["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
    for (i, h) in rows.iter().enumerate() {
        let id = if i == 0 {
            short_id.clone()
        } else {
            "<missing>".into()
        };
        let created = h
            .created
            .as_deref()
            .and_then(engine::images::parse_rfc3339)
            .map(ago)
            .unwrap_or_default();
        let mut by = h.created_by.clone().unwrap_or_default();
        if by.len() > 45 {
            by = format!(
                "{}…",
                &by[..by.char_indices().nth(44).map(|c| c.0).unwrap_or(by.len())]
            );
        }
        t.add_row(vec![
            id,
            created,
            by,
            human_size(h.size),
            h.comment.clone().unwrap_or_default(),
        ]);
    }
    print_table(&t);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

pub fn inspect(ctx: &Context, a: InspectArgs) -> Result<i32> {
    print_json(&json!(ctx.engine.inspect(&a.names)?))?;
    Ok(0)
}
