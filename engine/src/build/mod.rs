//! Dockerfile builds with the classic builder's semantics: stages, one image per step,
//! RUN through strata's own runtime, COPY/ADD from the context or another stage, a cache
//! keyed on the parent image and the step, and names given only when every step worked.
//! The CLI's `build` and the API's `POST /build` are both this.

pub mod cache;
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

/// Receives the build's progress text (`Step 1/5 : ...`, a RUN's output) as it comes.
pub type BuildOutput = Arc<dyn Fn(&str) + Send + Sync>;

/// What `build` is asked to do (Docker's `build` flags).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile (default `Dockerfile` in the context).
    pub dockerfile: Option<PathBuf>,
    /// Names the finished image gets.
    pub tags: Vec<String>,
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// Build up to this stage.
    pub target: Option<String>,
    /// Run every step even where the cache has it.
    pub no_cache: bool,
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
        let path = o
            .dockerfile
            .clone()
            .unwrap_or_else(|| o.context.join("Dockerfile"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            EngineError::io(
                format!(
                    "read the Dockerfile {} (give another with -f)",
                    path.display()
                ),
                e,
            )
        })?;
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

/// Double-quotes a word for an instruction line.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
