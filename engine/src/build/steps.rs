//! The steps that change files: RUN, COPY/ADD and WORKDIR, each in a container made on
//! the stage's image (not flushed: a crash removes it anyway), whose changes become the
//! step's layer (none when nothing changed, as Docker records an empty layer). The
//! container is removed whatever happens.

use super::context::{Source, Tree};
use super::copy::{CopyJob, Ownership};
use super::dockerfile::{Args, Instruction};
use super::stage::{Build, Stage, Work};
use crate::containers::{CreateOptions, LogOptions, LogSinks, StartOptions};
use crate::error::{EngineError, Result};
use crate::Engine;
use layerstore::child::CommittedLayer;
use layerstore::tarfs::WriteOptions;
use serde_json::{json, Value};
use std::path::Path;

/// A container made for one step, removed when dropped.
struct StepContainer {
    engine: Engine,
    id: String,
    /// Its driver layer (whose changes become the step's layer).
    layer: String,
    mounted: bool,
}

impl StepContainer {
    fn mount(&mut self) -> Result<std::path::PathBuf> {
        let p = self.engine.mount(&self.id)?;
        self.mounted = true;
        Ok(p)
    }
}

impl Drop for StepContainer {
    fn drop(&mut self) {
        if self.mounted {
            let _ = self.engine.umount(&self.id);
        }
        let _ = self.engine.remove_container(&self.id, true);
    }
}

fn container(engine: &Engine, o: &CreateOptions) -> Result<StepContainer> {
    let c = engine.create_container(o)?;
    Ok(StepContainer {
        engine: engine.clone(),
        id: c.id,
        layer: c.layer,
        mounted: false,
    })
}

/// Where a COPY reads: the context, or a rootfs mounted for `--from`.
pub(super) struct CopyStep {
    from: Option<(Tree, StepContainer)>,
    sources: Vec<Source>,
    dest: String,
    chown: Option<String>,
    chmod: Option<u32>,
    unpack: bool,
    sum: String,
    line: usize,
}

impl CopyStep {
    /// The tree the sources are in: the `--from` rootfs, else the build context.
    fn tree<'a>(&'a self, context: &'a Tree) -> &'a Tree {
        match &self.from {
            Some((t, _)) => t,
            None => context,
        }
    }

    /// The history line's text (Docker's `COPY file:HEX in /dest `).
    pub(super) fn history(&self, kw: &str) -> String {
        let mut flags = String::new();
        if let Some(c) = &self.chown {
            flags.push_str(&format!("--chown={c} "));
        }
        if let Some(m) = self.chmod {
            flags.push_str(&format!("--chmod={m:o} "));
        }
        format!("{kw} {flags}{} in {} ", self.sum, self.dest)
    }
}

impl Build<'_> {
    /// Resolves a COPY/ADD: its flags, sources (checked to exist) and their checksum.
    pub(super) fn copy_step(&mut self, stage: &Stage, inst: &Instruction) -> Result<CopyStep> {
        let kw = inst.keyword.as_str();
        let bad = |why: String| super::stage::bad(inst.line, why);
        let (mut from, mut chown, mut chmod) = (None, None, None);
        for (k, v) in &inst.flags {
            match k.as_str() {
                "from" => from = Some(v.clone()),
                "chown" => chown = Some(v.clone()),
                "chmod" => {
                    chmod = Some(
                        u32::from_str_radix(v, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or_else(|| {
                                bad(format!("--chmod={v}: give an octal mode such as 0755"))
                            })?,
                    )
                }
                other => return Err(bad(format!("{kw} has no --{other} flag"))),
            }
        }
        let mut words = match &inst.args {
            Args::Json(v) => v.clone(),
            Args::Text(t) => super::config_change::words(t, t).map_err(|e| bad(e.to_string()))?,
        };
        for w in &mut words {
            *w = self.expand(stage, inst, w)?;
        }
        if words.len() < 2 {
            return Err(bad(format!(
                "{kw} needs at least one source and a destination"
            )));
        }
        let dest = words.pop().unwrap_or_default();
        let dest = if dest.starts_with('/') {
            dest
        } else {
            let wd = stage.workdir();
            let joined = format!("{}/{dest}", wd.trim_end_matches('/'));
            if dest == "." || dest.ends_with('/') {
                format!("{}/", joined.trim_end_matches(['.', '/']))
            } else {
                joined
            }
        };
        if kw == "ADD" {
            if let Some(u) = words
                .iter()
                .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            {
                return Err(EngineError::Unsupported(format!(
                    "Dockerfile line {}: ADD {u}: strata build does not download (this host reaches no outside network): fetch the file into the context and COPY it",
                    inst.line
                )));
            }
        }
        let mut tree_from = None;
        if let Some(f) = &from {
            let f = self.expand(stage, inst, f)?;
            let img = match self.stage_image(&f) {
                Some(i) => i,
                None => self.store.resolve_image(&f).map_err(|e| {
                    EngineError::NotFound(format!("Dockerfile line {}: --from={f}: no stage of that name before this one, and {e}", inst.line))
                })?,
            };
            let mut c = container(
                self.engine,
                &CreateOptions {
                    image: img.id.to_string(),
                    scratch: true,
                    ..Default::default()
                },
            )?;
            let root = c.mount()?;
            tree_from = Some((Tree::rootfs(&root, format!("image of --from={f}"))?, c));
        }
        let mut step = CopyStep {
            from: tree_from,
            sources: Vec::new(),
            dest,
            chown,
            chmod,
            unpack: kw == "ADD",
            sum: String::new(),
            line: inst.line,
        };
        let tree = step.tree(&self.tree);
        let mut sources = Vec::new();
        for w in &words {
            sources.extend(tree.sources(w, inst.line)?);
        }
        step.sum = tree.checksum(&sources, step.from.is_some())?;
        step.sources = sources;
        Ok(step)
    }

    /// The image of an earlier stage, by name or index.
    fn stage_image(&self, f: &str) -> Option<layerstore::images::ImageRecord> {
        match f.parse::<usize>() {
            Ok(n) => self.stages.get(n).map(|(_, i)| i.clone()),
            Err(_) => self.stage_named(f),
        }
    }

    /// Runs the step's work in a container on the stage's image; returns its layer.
    pub(super) fn in_container(
        &mut self,
        stage: &Stage,
        work: &Work,
    ) -> Result<Option<CommittedLayer>> {
        let mut o = CreateOptions {
            image: stage.image.id.to_string(),
            scratch: true,
            network: self.o.network.clone(),
            etc_if_present: true,
            ..Default::default()
        };
        if let Work::Run(argv) = work {
            o.command = argv.clone();
            o.entrypoint = Some(Vec::new());
            let mut extra: Vec<String> = stage
                .visible_args()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            for p in super::PROXY_ARGS {
                if let Some(v) = self.o.build_args.get(*p) {
                    if !stage.args.contains_key(*p) {
                        extra.push(format!("{p}={v}"));
                    }
                }
            }
            o.env = extra;
            o.user = stage.config["User"].as_str().map(str::to_string);
            o.workdir = Some(stage.workdir());
        }
        let mut c = container(self.engine, &o)?;
        self.say(&format!(" ---> Running in {}\n", &c.id[..12]));
        match work {
            Work::Config => {}
            Work::Run(argv) => self.run_in(&c.id, argv)?,
            Work::Mkdir(dir) => {
                let root = c.mount()?;
                let rootfd =
                    fsutil::open_root(&root).map_err(|e| EngineError::io("open the rootfs", e))?;
                super::copy::ensure_dir(
                    std::os::fd::AsFd::as_fd(&rootfd),
                    Path::new(&super::ignore::clean(dir)),
                    Ownership::default(),
                )
                .map_err(|e| EngineError::io(format!("WORKDIR {dir}"), e))?;
            }
            Work::Copy(step) => {
                let root = c.mount()?;
                let owner = match &step.chown {
                    None => Ownership::default(),
                    Some(spec) => {
                        let spec = if spec.contains(':') {
                            spec.clone()
                        } else {
                            format!("{spec}:{spec}")
                        };
                        let (uid, gid, _) = crate::containers::user::resolve_user(&root, &spec)?;
                        Ownership {
                            uid,
                            gid,
                            mode: None,
                        }
                    }
                };
                let job = CopyJob {
                    tree: step.tree(&self.tree),
                    sources: &step.sources,
                    dest: step.dest.clone(),
                    owner: Ownership {
                        mode: step.chmod,
                        ..owner
                    },
                    unpack: step.unpack,
                    line: step.line,
                };
                super::copy::copy(&job, &root)?;
            }
        }
        if c.mounted {
            self.engine.umount(&c.id)?;
            c.mounted = false;
        }
        let layer = layerstore::child::container_layer(
            &self.store,
            &c.layer,
            WriteOptions {
                clamp_mtime: self.epoch(),
                with_parents: true,
                // The mountpoints the runtime makes where an image lacks them; like
                // Docker's init layer, they are not the step's changes.
                drop_added: if matches!(work, Work::Run(_)) {
                    layerstore::tarfs::write::RUNTIME_MOUNTPOINTS
                } else {
                    &[]
                },
                ..Default::default()
            },
            true,
        )?;
        self.say(&format!(
            "Removing intermediate container {}\n",
            &c.id[..12]
        ));
        drop(c);
        Ok(layer)
    }

    /// Runs a RUN's command under its shim (never a fork of this process, which may be a
    /// many-threaded daemon), its output followed from the logs into the build's; an exit
    /// other than 0 fails the step with Docker's message and the code.
    fn run_in(&self, id: &str, argv: &[String]) -> Result<()> {
        self.engine.start_detached(id, StartOptions::default())?;
        let mut out = OutputWriter(self.out.clone());
        let mut err = OutputWriter(self.out.clone());
        self.engine.logs(
            id,
            LogOptions {
                follow: true,
                wait_for_start: true,
                ..Default::default()
            },
            LogSinks {
                stdout: &mut out,
                stderr: &mut err,
            },
        )?;
        let code = self.engine.wait(id)?;
        if code != 0 {
            return Err(EngineError::StepFailed {
                code,
                message: format!(
                    "The command '{}' returned a non-zero code: {code}",
                    argv.join(" ")
                ),
            });
        }
        Ok(())
    }
}

/// The build's output as a writer (a RUN's logs go there).
struct OutputWriter(super::BuildOutput);

impl std::io::Write for OutputWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (self.0)(super::BuildEvent::Text(&String::from_utf8_lossy(buf)));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Go's `time.ParseDuration` (`1m30s`, `500ms`) in nanoseconds.
fn duration(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += v * mult;
        rest = &rest[u..];
    }
    Some(total as i64)
}

/// HEALTHCHECK's config (Docker's `Healthcheck` object).
pub(super) fn healthcheck(inst: &Instruction) -> Result<Value> {
    let bad = |why: String| super::stage::bad(inst.line, why);
    let text = match &inst.args {
        Args::Text(t) => t.trim().to_string(),
        Args::Json(v) => serde_json::to_string(v)?,
    };
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
    let mut hc = serde_json::Map::new();
    if word.eq_ignore_ascii_case("NONE") {
        if !rest.trim().is_empty() || !inst.flags.is_empty() {
            return Err(bad("HEALTHCHECK NONE takes no arguments".into()));
        }
        hc.insert("Test".into(), json!(["NONE"]));
        return Ok(Value::Object(hc));
    }
    if !word.eq_ignore_ascii_case("CMD") {
        return Err(bad(
            "use HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE".into(),
        ));
    }
    let rest = rest.trim();
    let test = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) if rest.starts_with('[') => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v);
            t
        }
        _ => vec!["CMD-SHELL".to_string(), rest.to_string()],
    };
    hc.insert("Test".into(), json!(test));
    for (k, v) in &inst.flags {
        let key = match k.as_str() {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let n: i64 = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| bad(format!("--retries={v}: give a number")))?;
                hc.insert("Retries".into(), json!(n));
                continue;
            }
            other => return Err(bad(format!("HEALTHCHECK has no --{other} flag"))),
        };
        let d = duration(v)
            .ok_or_else(|| bad(format!("--{k}={v}: give a duration such as 30s or 1m30s")))?;
        hc.insert(key.into(), json!(d));
    }
    Ok(Value::Object(hc))
}
