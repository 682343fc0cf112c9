//! Image verbs: load, save, import, images, tag, rmi, history, inspect.

use super::{print_json, Context, OutFormat};
use crate::output::{ago, human_size, print_table, table};
use anyhow::{bail, Context as _, Result};
use clap::Args;
use layerstore::export::{self, Format};
use layerstore::images::ImageRecord;
use layerstore::import::{self, LoadOptions};
use layerstore::spec::Platform;
use layerstore::Store;
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
    let platform = match &a.platform {
        Some(p) => Some(
            Platform::parse(p)
                .with_context(|| format!("invalid --platform {p:?}: use os/arch[/variant]"))?,
        ),
        None => None,
    };
    let store = ctx.store()?;
    let loaded = import::load(&store, &a.input, &LoadOptions { platform })
        .with_context(|| format!("load {}", a.input.display()))?;
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
    let format = match a.format.as_str() {
        "docker" | "docker-archive" => Format::Docker,
        "oci" | "oci-dir" | "oci-archive" => Format::Oci,
        f => bail!("invalid --format {f:?}: use docker or oci"),
    };
    let store = ctx.store_ro()?;
    export::save(&store, &a.images, &a.output, format)
        .with_context(|| format!("save {}", a.output.display()))?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A rootfs tarball (plain, gzip or zstd).
    file: PathBuf,
    /// The name to give the image.
    reference: String,
}

pub fn import(ctx: &Context, a: ImportArgs) -> Result<i32> {
    let store = ctx.store()?;
    let l = import::import_rootfs(&store, &a.file, &a.reference)
        .with_context(|| format!("import {}", a.file.display()))?;
    println!("{}", l.id);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only ids.
    #[arg(short, long)]
    quiet: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
}

/// Seconds since the epoch of an RFC 3339 time (for CREATED columns).
fn parse_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

fn created_of(store: &Store, img: &ImageRecord) -> Option<String> {
    store.image_config(img).ok().and_then(|c| c.created)
}

pub fn images(ctx: &Context, a: ImagesArgs) -> Result<i32> {
    let store = ctx.store_ro()?;
    let refs = store.refs.load()?;
    let mut all = store.images.all()?;
    all.sort_by_key(|(_, i)| std::cmp::Reverse(i.added));
    if a.quiet {
        all.iter()
            .for_each(|(_, img)| println!("{}", img.id.short()));
        return Ok(0);
    }
    // Each image with its names and creation time, read once.
    let entries: Vec<(&ImageRecord, Vec<String>, Option<String>)> = all
        .iter()
        .map(|(_, img)| {
            let names = refs
                .iter()
                .filter(|(_, v)| **v == img.id)
                .map(|(k, _)| k.clone())
                .collect();
            (img, names, created_of(&store, img))
        })
        .collect();
    if a.format == OutFormat::Json {
        let v: Vec<_> = entries
            .iter()
            .map(|(img, names, created)| {
                json!({
                    "Id": img.id.to_string(),
                    "RepoTags": names,
                    "Created": created,
                    "Size": img.size,
                    "Layers": img.layers.len(),
                    "ManifestDigest": img.manifest.to_string(),
                })
            })
            .collect();
        print_json(&json!(v))?;
        return Ok(0);
    }
    let mut t = table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    for (img, names, created) in &entries {
        let created = created
            .as_deref()
            .and_then(parse_time)
            .map(ago)
            .unwrap_or_else(|| "N/A".into());
        let repo_tags: Vec<(String, String)> = if names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            names
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
                img.id.short().to_string(),
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
    let store = ctx.store()?;
    store
        .tag(&a.source, &a.target)
        .with_context(|| format!("tag {} {}", a.source, a.target))?;
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
    let store = ctx.store()?;
    let mut failed = false;
    for i in &a.images {
        match store.rmi(i, a.force) {
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
    let store = ctx.store_ro()?;
    let img = store
        .resolve_image(&a.image)
        .with_context(|| format!("history {}", a.image))?;
    let cfg = store.image_config(&img)?;
    let mut layers = img.layers.iter();
    let mut rows = Vec::new();
    for h in &cfg.history {
        let size = if h.empty_layer {
            0
        } else {
            match layers.next() {
                Some(c) => store.layer(c)?.size,
                None => 0,
            }
        };
        rows.push((h.clone(), size));
    }
    rows.reverse();
    if a.format == OutFormat::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|(h, s)| json!({"Created": h.created, "CreatedBy": h.created_by, "Size": s, "Comment": h.comment}))
            .collect();
        return print_json(&json!(v)).map(|_| 0);
    }
    let mut t = table(&["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
    for (i, (h, size)) in rows.iter().enumerate() {
        let id = if i == 0 {
            img.id.short().to_string()
        } else {
            "<missing>".into()
        };
        let created = h
            .created
            .as_deref()
            .and_then(parse_time)
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
            human_size(*size),
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

/// The JSON `inspect` prints for an image, shaped like Docker's.
pub fn image_json(store: &Store, img: &ImageRecord) -> Result<serde_json::Value> {
    let cfg_raw: serde_json::Value = serde_json::from_slice(&store.blobs.read(&img.id)?)?;
    let cfg = store.image_config(img)?;
    let tags = store.refs.of(&img.id)?;
    let digests: Vec<String> = tags
        .iter()
        .map(|t| format!("{}@{}", layerstore::refs::split(t).0, img.manifest))
        .collect();
    let top = match img.layers.last() {
        Some(c) => store.layer(c)?.cache.get(store.driver.name()).cloned(),
        None => None,
    };
    Ok(json!({
        "Id": img.id.to_string(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": cfg.created,
        "Architecture": cfg.architecture,
        "Os": cfg.os,
        "Size": img.size,
        "Config": cfg_raw.get("config").cloned().unwrap_or(serde_json::Value::Null),
        "RootFS": {"Type": "layers", "Layers": cfg.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "Manifest": {"Digest": img.manifest.to_string(), "MediaType": img.manifest_media_type},
        "GraphDriver": {"Name": store.driver.name(), "Data": {"Layer": top}},
    }))
}

pub fn inspect(ctx: &Context, a: InspectArgs) -> Result<i32> {
    let store = ctx.store_ro()?;
    let mut out = Vec::new();
    for n in &a.names {
        if let Ok(c) = store.resolve_container(n) {
            out.push(super::containers::container_json(&store, &c)?);
            continue;
        }
        let img = store
            .resolve_image(n)
            .with_context(|| format!("inspect {n}"))?;
        out.push(image_json(&store, &img)?);
    }
    print_json(&json!(out))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_rfc3339() {
        assert_eq!(super::parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            super::parse_time("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000)
        );
        assert_eq!(super::parse_time("bad"), None);
    }
}
