//! `build`: an image from a Dockerfile (the engine's build; progress printed as
//! `docker build` prints it).

use super::Context;
use anyhow::{bail, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name the image (repeatable).
    #[arg(short, long = "tag")]
    tag: Vec<String>,
    /// The Dockerfile (default CONTEXT/Dockerfile).
    #[arg(short, long = "file")]
    file: Option<PathBuf>,
    /// A build argument `K=V` (`K` alone takes the value from the environment).
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Build up to this stage.
    #[arg(long)]
    target: Option<String>,
    /// Run every step, whatever the cache has.
    #[arg(long)]
    no_cache: bool,
    /// The network of RUN steps: bridge (default), none, host or a network's name.
    #[arg(long, default_value = "bridge")]
    network: String,
    /// Write the image id here.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// A label `K=V` for the image (repeatable).
    #[arg(long)]
    label: Vec<String>,
    /// Print only the image id.
    #[arg(short, long)]
    quiet: bool,
    /// The build context directory.
    context: PathBuf,
}

fn pairs(flag: &str, v: &[String], from_env: bool) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for s in v {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            None if from_env && !s.is_empty() => {
                if let Ok(v) = std::env::var(s) {
                    out.insert(s.clone(), v);
                }
            }
            _ => bail!("invalid {flag} {s:?}: use KEY=VALUE"),
        }
    }
    Ok(out)
}

pub fn build(ctx: &Context, a: BuildArgs) -> Result<i32> {
    if !a.context.is_dir() {
        bail!(
            "the build context {} is not a directory (give the directory that holds the Dockerfile and the files it copies)",
            a.context.display()
        );
    }
    let o = engine::build::BuildOptions {
        context: a.context.clone(),
        // -f is relative to where strata runs, not to the context.
        dockerfile: match &a.file {
            Some(f) => Some(std::path::absolute(f)?),
            None => None,
        },
        tags: a.tag.clone(),
        build_args: pairs("--build-arg", &a.build_arg, true)?,
        target: a.target.clone(),
        no_cache: a.no_cache,
        network: a.network.clone(),
        labels: pairs("--label", &a.label, false)?,
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    let quiet = a.quiet;
    let out: engine::build::BuildOutput = Arc::new(move |e| {
        if let (engine::build::BuildEvent::Text(s), false) = (e, quiet) {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(s.as_bytes());
            let _ = o.flush();
        }
    });
    let built = match ctx.engine.build(&o, out) {
        Ok(b) => b,
        Err(e) => {
            if let engine::EngineError::StepFailed { code, message } = e.root() {
                eprintln!("strata: {message}");
                return Ok(*code);
            }
            return Err(e.into());
        }
    };
    if let Some(f) = &a.iidfile {
        std::fs::write(f, built.id.to_string())
            .map_err(|e| anyhow::anyhow!("write --iidfile {}: {e}", f.display()))?;
    }
    if a.quiet {
        println!("{}", built.id);
    }
    Ok(0)
}
