//! Dockerfile builds with the classic builder's semantics: stages, one image per step,
//! RUN through strata's own runtime, COPY/ADD from the context or another stage, a cache
//! keyed on the parent image and the step, and names given only when every step worked.
//! The CLI's `build` and the API's `POST /build` are both this.

pub mod cache;
pub mod config_change;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod ignore;
mod stage;
mod steps;

use crate::error::{EngineError, Result};
use crate::Engine;
use dockerfile::{Args, Instruction};
use layerstore::Digest;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What a build reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum BuildEvent<'a> {
    /// Progress text (`Step 1/5 : ...`, a RUN's output), as `docker build` prints it.
    Text(&'a str),
    /// The finished image, before it is named (the API's `aux` message).
    Built(&'a Digest),
}

/// Receives a build's events as they come.
pub type BuildOutput = Arc<dyn Fn(BuildEvent<'_>) + Send + Sync>;

/// What `build` is asked to do (Docker's `build` flags).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile: an absolute path is read as it is (the CLI's `-f`), a relative one
    /// inside the context (the API's `dockerfile`: no symlink leads out of it). Default
    /// `Dockerfile` in the context.
    pub dockerfile: Option<PathBuf>,
    /// Names the finished image gets.
    pub tags: Vec<String>,
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// Build up to this stage.
    pub target: Option<String>,
    /// Run every step even where the cache has it.
    pub no_cache: bool,
    /// The network RUN steps are on (`--network`): the default bridge when empty, as the
    /// classic builder's; `none`, `host` or a network's name otherwise.
    pub network: String,
    /// `--label K=V`, a LABEL step at the end.
    pub labels: BTreeMap<String, String>,
    /// Times in configs, history and layer files no later than this (seconds since the
    /// epoch), for reproducible layers; also taken from the SOURCE_DATE_EPOCH build arg.
    pub source_date_epoch: Option<u64>,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    pub id: Digest,
    /// Steps run and steps served from the cache.
    pub steps: usize,
    pub cached: usize,
}

/// Args every build knows without an ARG line (Docker's predefined proxy args); they
/// reach RUN steps but never the history or the cache key.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

impl Engine {
    /// Builds the image the Dockerfile describes; names it with `o.tags` once every step
    /// worked. A failed step leaves no container behind and names nothing.
    pub fn build(&self, o: &BuildOptions, out: BuildOutput) -> Result<Built> {
        // Every name checked before anything runs: a bad one must not leave the others set.
        for t in &o.tags {
            layerstore::refs::normalize(t)
                .map_err(|e| EngineError::Invalid(format!("invalid tag {t:?}: {e}")))?;
        }
        let text = read_dockerfile(o)?;
        let df = dockerfile::parse(&text)?;
        // `--label`s are one more LABEL step at the end of the target stage.
        let labels = (!o.labels.is_empty()).then(|| {
            let pairs: Vec<String> = o
                .labels
                .iter()
                .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
                .collect();
            Instruction {
                line: 0,
                keyword: "LABEL".into(),
                flags: Vec::new(),
                args: Args::Text(pairs.join(" ")),
                original: format!("LABEL {}", pairs.join(" ")),
            }
        });
        let tree = context::Tree::context(&o.context)?;
        let mut build = stage::Build::new(self, o, &df, tree, labels, out)?;
        let built = build.run()?;
        Ok(built)
    }
}

/// The Dockerfile's text (see [`BuildOptions::dockerfile`]).
fn read_dockerfile(o: &BuildOptions) -> Result<String> {
    let rel = match &o.dockerfile {
        Some(p) if p.is_absolute() => {
            return std::fs::read_to_string(p)
                .map_err(|e| EngineError::io(format!("read the Dockerfile {}", p.display()), e))
        }
        Some(p) => p.clone(),
        None => PathBuf::from("Dockerfile"),
    };
    let missing = || {
        EngineError::NotFound(format!(
            "no Dockerfile {} in the build context {} (give another with -f)",
            rel.display(),
            o.context.display()
        ))
    };
    let root = fsutil::open_root(&o.context).map_err(|e| {
        EngineError::io(format!("open the build context {}", o.context.display()), e)
    })?;
    let data = fsutil::read_regular_in_root(&root, &rel, 16 << 20)
        .map_err(|e| EngineError::io(format!("read the Dockerfile {}", rel.display()), e))?
        .ok_or_else(missing)?;
    String::from_utf8(data).map_err(|_| {
        EngineError::Invalid(format!(
            "the Dockerfile {} is not UTF-8 text",
            rel.display()
        ))
    })
}

/// A word for an instruction line, double-quoted where it needs to be.
fn quote(s: &str) -> String {
    if !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || "\"'\\$=".contains(c)) {
        return s.to_string();
    }
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
    )
}
