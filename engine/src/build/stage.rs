//! A build's walk through the Dockerfile: global ARGs, then each stage from its FROM,
//! every instruction one step that makes the next image (or takes it from the cache).

use super::cache::Cache;
use super::config_change::{self, Change};
use super::context::Tree;
use super::dockerfile::{substitute, Args, Dockerfile, Instruction};
use super::{BuildOptions, BuildOutput, Built, PROXY_ARGS};
use crate::containers::create::strings;
use crate::error::{Context as _, EngineError, Result};
use crate::Engine;
use layerstore::child::CommittedLayer;
use layerstore::images::ImageRecord;
use layerstore::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One build in progress.
pub(super) struct Build<'a> {
    pub(super) engine: &'a Engine,
    pub(super) o: &'a BuildOptions,
    pub(super) df: &'a Dockerfile,
    pub(super) tree: Tree,
    extra: Option<Instruction>,
    pub(super) out: BuildOutput,
    pub(super) store: Store,
    cache: Cache,
    global_args: BTreeMap<String, String>,
    used_args: BTreeSet<String>,
    /// Finished stages: name (lower case) and image.
    pub(super) stages: Vec<(Option<String>, ImageRecord)>,
    step: usize,
    total: usize,
    ran: usize,
    cached: usize,
}

/// The state of the stage being built.
pub(super) struct Stage {
    name: Option<String>,
    pub(super) image: ImageRecord,
    /// The runtime config (`config` of the image config) so far.
    pub(super) config: Value,
    /// ARGs declared in this stage that have a value.
    pub(super) args: BTreeMap<String, String>,
    cmd_set: bool,
    author: Option<String>,
}

impl Stage {
    /// A variable's value for substitution: ENV first, then ARG.
    pub(super) fn lookup(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.env()
            .iter()
            .find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
            .or_else(|| self.args.get(name).cloned())
    }

    pub(super) fn env(&self) -> Vec<String> {
        strings(&self.config["Env"])
    }

    /// The shell for shell-form commands (SHELL, else `/bin/sh -c`).
    pub(super) fn shell(&self) -> Vec<String> {
        let s = strings(&self.config["Shell"]);
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    pub(super) fn workdir(&self) -> String {
        self.config["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    /// A RUN/CMD/ENTRYPOINT's argv: the exec form as written, the shell form through the
    /// stage's shell.
    fn command(&self, args: &Args) -> Vec<String> {
        match args {
            Args::Json(v) => v.clone(),
            Args::Text(t) => {
                let mut s = self.shell();
                s.push(t.clone());
                s
            }
        }
    }

    /// The stage's ARGs a RUN sees as variables: those no ENV of the same name hides.
    pub(super) fn visible_args(&self) -> impl Iterator<Item = (&String, &String)> {
        let env = self.env();
        self.args
            .iter()
            .filter(move |(k, _)| !env.iter().any(|e| e.starts_with(&format!("{k}="))))
    }

    /// How history shows a step that changes only the config.
    fn nop(&self, text: &str) -> String {
        format!("{} #(nop)  {text}", self.shell().join(" "))
    }
}

/// Go's `%q` of a string list, as the classic builder writes CMD and friends in history.
fn go_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

pub(super) fn bad(line: usize, why: impl std::fmt::Display) -> EngineError {
    if line == 0 {
        EngineError::Invalid(format!("--label: {why}"))
    } else {
        EngineError::Invalid(format!("Dockerfile line {line}: {why}"))
    }
}

/// What a step does once its key is known and the cache has nothing.
pub(super) enum Work {
    /// Only the config changes.
    Config,
    /// A command in a container (its argv).
    Run(Vec<String>),
    /// Files copied into the rootfs.
    Copy(Box<super::steps::CopyStep>),
    /// WORKDIR's directory made if missing.
    Mkdir(String),
}

impl<'a> Build<'a> {
    pub(super) fn new(
        engine: &'a Engine,
        o: &'a BuildOptions,
        df: &'a Dockerfile,
        tree: Tree,
        extra: Option<Instruction>,
        out: BuildOutput,
    ) -> Result<Build<'a>> {
        let store = engine.store()?;
        let cache = Cache::of(&store);
        Ok(Build {
            engine,
            o,
            df,
            tree,
            extra,
            out,
            store,
            cache,
            global_args: BTreeMap::new(),
            used_args: BTreeSet::new(),
            stages: Vec::new(),
            step: 0,
            total: 0,
            ran: 0,
            cached: 0,
        })
    }

    pub(super) fn say(&self, s: &str) {
        (self.out)(super::BuildEvent::Text(s));
    }

    /// Runs the whole build; returns the image of the target stage.
    pub(super) fn run(&mut self) -> Result<Built> {
        let insts = &self.df.instructions;
        let first_from = insts
            .iter()
            .position(|i| i.keyword == "FROM")
            .ok_or_else(|| EngineError::Invalid("the Dockerfile has no FROM instruction".into()))?;
        if let Some(i) = insts[..first_from].iter().find(|i| i.keyword != "ARG") {
            return Err(bad(
                i.line,
                format!(
                    "{} before the first FROM: only ARG may come before it",
                    i.keyword
                ),
            ));
        }
        // Stages: [start, end) ranges of instructions from each FROM.
        let mut ranges = Vec::new();
        for (n, i) in insts.iter().enumerate().skip(first_from) {
            if i.keyword == "FROM" {
                ranges.push((n, insts.len()));
                if ranges.len() > 1 {
                    let k = ranges.len() - 2;
                    ranges[k].1 = n;
                }
            }
        }
        let names: Vec<Option<String>> = ranges
            .iter()
            .map(|(s, _)| {
                from_parts(&text_of(&insts[*s].args), 0)
                    .ok()
                    .and_then(|(_, n)| n)
            })
            .collect();
        let target = match &self.o.target {
            None => ranges.len() - 1,
            Some(t) => names
                .iter()
                .position(|n| n.as_deref() == Some(&t.to_ascii_lowercase()))
                .ok_or_else(|| {
                    EngineError::NotFound(format!(
                        "--target {t}: no stage of that name in the Dockerfile"
                    ))
                })?,
        };
        self.total = first_from
            + ranges[..=target].iter().map(|(s, e)| e - s).sum::<usize>()
            + usize::from(self.extra.is_some());

        for inst in &insts[..first_from] {
            self.begin(inst);
            self.global_arg(inst)?;
        }
        let mut last = None;
        for (n, (s, e)) in ranges[..=target].iter().enumerate() {
            let mut stage = self.from(&insts[*s])?;
            for inst in &insts[s + 1..*e] {
                self.begin(inst);
                self.dispatch(&mut stage, inst)?;
            }
            if n == target {
                if let Some(extra) = self.extra.clone() {
                    self.begin(&extra);
                    self.dispatch(&mut stage, &extra)?;
                }
            }
            self.stages.push((stage.name.clone(), stage.image.clone()));
            last = Some(stage.image);
        }
        let img = last.ok_or_else(|| EngineError::Invalid("nothing to build".into()))?;
        let unused: Vec<&String> = self
            .o
            .build_args
            .keys()
            .filter(|k| {
                !self.used_args.contains(*k)
                    && !PROXY_ARGS.contains(&k.as_str())
                    && *k != "SOURCE_DATE_EPOCH"
            })
            .collect();
        if !unused.is_empty() {
            let list: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.say(&format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                list.join(" ")
            ));
        }
        for t in &self.o.tags {
            self.store
                .tag(&img.id.to_string(), t)
                .ctx(|| format!("tag the built image {t}"))?;
        }
        (self.out)(super::BuildEvent::Built(&img.id));
        self.say(&format!("Successfully built {}\n", img.id.short()));
        for t in &self.o.tags {
            self.say(&format!(
                "Successfully tagged {}\n",
                layerstore::refs::normalize(t).unwrap_or_else(|_| t.clone())
            ));
        }
        crate::events::record(&self.store.root, "image", "build", &img.id.to_string(), "");
        Ok(Built {
            id: img.id,
            steps: self.ran,
            cached: self.cached,
        })
    }

    fn begin(&mut self, inst: &Instruction) {
        self.step += 1;
        self.say(&format!(
            "Step {}/{} : {}\n",
            self.step, self.total, inst.original
        ));
    }

    /// `--build-arg`'s value for a declared ARG `k`, which counts it as used.
    fn build_arg(&mut self, k: &str) -> Option<String> {
        let v = self.o.build_args.get(k)?;
        self.used_args.insert(k.to_string());
        Some(v.clone())
    }

    /// An ARG before the first FROM: usable in FROM lines.
    fn global_arg(&mut self, inst: &Instruction) -> Result<()> {
        for (k, default) in arg_decls(inst)? {
            let value = match self.build_arg(&k) {
                Some(v) => Some(v),
                None => match default {
                    Some(d) => Some(substitute(
                        &d,
                        self.df.escape,
                        &|n| self.global_args.get(n).cloned(),
                        inst.line,
                    )?),
                    None => None,
                },
            };
            if let Some(v) = value {
                self.global_args.insert(k, v);
            }
        }
        Ok(())
    }

    /// FROM: the stage's base image (`scratch`, an earlier stage or an image in the store).
    fn from(&mut self, inst: &Instruction) -> Result<Stage> {
        self.begin(inst);
        let globals = self.global_args.clone();
        let text = substitute(
            &text_of(&inst.args),
            self.df.escape,
            &|n| globals.get(n).cloned(),
            inst.line,
        )?;
        let (base, name) = from_parts(&text, inst.line)?;
        for (k, v) in &inst.flags {
            match k.as_str() {
                "platform" => {
                    let v = substitute(v, self.df.escape, &|n| globals.get(n).cloned(), inst.line)?;
                    let want = layerstore::spec::Platform::parse(&v).ok_or_else(|| {
                        bad(
                            inst.line,
                            format!("--platform={v}: use os/arch, e.g. linux/amd64"),
                        )
                    })?;
                    if !want.matches(&layerstore::spec::Platform::default_linux()) {
                        return Err(EngineError::Unsupported(format!(
                            "Dockerfile line {}: --platform={v}: this host builds and runs linux/amd64 only",
                            inst.line
                        )));
                    }
                }
                other => return Err(bad(inst.line, format!("FROM has no --{other} flag"))),
            }
        }
        let image = if base.eq_ignore_ascii_case("scratch") {
            layerstore::child::scratch(&self.store)?
        } else if let Some(img) = self.stage_named(&base) {
            img
        } else {
            self.store.resolve_image(&base).map_err(|e| {
                EngineError::NotFound(format!(
                    "Dockerfile line {}: FROM {base}: {e} (strata build does not pull: `strata pull {base}` or load it first)",
                    inst.line
                ))
            })?
        };
        self.say(&format!(" ---> {}\n", image.id.short()));
        let cfg: Value = serde_json::from_slice(&self.store.blobs.read(&image.id)?)?;
        let mut stage = Stage {
            name,
            config: match cfg.get("config") {
                Some(c) if c.is_object() => c.clone(),
                _ => json!({}),
            },
            image,
            args: BTreeMap::new(),
            cmd_set: false,
            author: cfg["author"].as_str().map(str::to_string),
        };
        with_default_path(&mut stage.config);
        // ONBUILD triggers of the base run now, and are not passed on.
        let triggers = strings(&stage.config["OnBuild"]);
        if let Some(o) = stage.config.as_object_mut() {
            o.remove("OnBuild");
        }
        if !triggers.is_empty() {
            self.say(&format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            for t in triggers {
                let df = super::dockerfile::parse(&t)
                    .map_err(|e| bad(inst.line, format!("ONBUILD trigger {t:?} of {base}: {e}")))?;
                for i in &df.instructions {
                    check_trigger(inst.line, &i.keyword)?;
                    let i = Instruction {
                        line: inst.line,
                        ..i.clone()
                    };
                    self.dispatch(&mut stage, &i)?;
                }
            }
        }
        Ok(stage)
    }

    /// Substitutes variables in an instruction's text arguments.
    pub(super) fn expand(&self, stage: &Stage, inst: &Instruction, s: &str) -> Result<String> {
        substitute(s, self.df.escape, &|n| stage.lookup(n), inst.line)
    }

    /// A config change given as Dockerfile text (variables substituted), checked.
    fn change(&self, stage: &Stage, inst: &Instruction) -> Result<Change> {
        let text = match &inst.args {
            Args::Text(t) => self.expand(stage, inst, t)?,
            Args::Json(v) => serde_json::to_string(v)?,
        };
        config_change::parse(&format!("{} {text}", inst.keyword)).map_err(|e| bad(inst.line, e))
    }

    /// One instruction of a stage.
    fn dispatch(&mut self, stage: &mut Stage, inst: &Instruction) -> Result<()> {
        let kw = inst.keyword.as_str();
        if kw != "COPY" && kw != "ADD" && kw != "HEALTHCHECK" {
            if let Some((k, _)) = inst.flags.first() {
                return Err(bad(inst.line, format!("{kw} has no --{k} flag")));
            }
        }
        match kw {
            "ENV" | "LABEL" | "EXPOSE" | "VOLUME" | "USER" | "STOPSIGNAL" => {
                let ch = self.change(stage, inst)?;
                let text = match &ch {
                    Change::Env(kv) | Change::Label(kv) => {
                        let pairs: Vec<String> =
                            kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        format!("{kw} {}", pairs.join(" "))
                    }
                    Change::Expose(p) => format!("EXPOSE {}", p.join(" ")),
                    Change::Volume(p) => format!("VOLUME {}", go_list(p)),
                    Change::User(u) | Change::StopSignal(u) => format!("{kw} {u}"),
                    _ => inst.original.clone(),
                };
                config_change::apply(&mut stage.config, &[ch]);
                let by = stage.nop(&text);
                self.step_image(stage, &by, Work::Config)
            }
            "WORKDIR" => {
                let ch = self.change(stage, inst)?;
                config_change::apply(&mut stage.config, &[ch]);
                let dir = stage.workdir();
                let by = stage.nop(&format!("WORKDIR {dir}"));
                self.step_image(stage, &by, Work::Mkdir(dir))
            }
            "CMD" | "ENTRYPOINT" => {
                let argv = stage.command(&inst.args);
                let c = stage
                    .config
                    .as_object_mut()
                    .ok_or_else(|| bad(inst.line, "config is not an object"))?;
                if kw == "CMD" {
                    c.insert("Cmd".into(), json!(argv));
                    stage.cmd_set = true;
                } else {
                    c.insert("Entrypoint".into(), json!(argv));
                    if !stage.cmd_set {
                        c.insert("Cmd".into(), Value::Null);
                    }
                }
                let by = stage.nop(&format!("{kw} {}", go_list(&argv)));
                self.step_image(stage, &by, Work::Config)
            }
            "SHELL" => {
                let Args::Json(v) = &inst.args else {
                    return Err(bad(
                        inst.line,
                        "SHELL takes a JSON array, e.g. SHELL [\"/bin/bash\", \"-c\"]",
                    ));
                };
                if v.is_empty() {
                    return Err(bad(inst.line, "SHELL needs at least the shell's path"));
                }
                stage.config["Shell"] = json!(v);
                let by = stage.nop(&format!("SHELL {}", go_list(v)));
                self.step_image(stage, &by, Work::Config)
            }
            "ONBUILD" => {
                let Args::Text(t) = &inst.args else {
                    return Err(bad(inst.line, "ONBUILD takes an instruction"));
                };
                let trigger = super::dockerfile::parse(t).map_err(|e| bad(inst.line, e))?;
                if let Some(i) = trigger.instructions.first() {
                    check_trigger(inst.line, &i.keyword)?;
                }
                config_change::apply(&mut stage.config, &[Change::Onbuild(t.clone())]);
                let by = stage.nop(&format!("ONBUILD {t}"));
                self.step_image(stage, &by, Work::Config)
            }
            "MAINTAINER" => {
                let t = match &inst.args {
                    Args::Text(t) => self.expand(stage, inst, t)?,
                    Args::Json(v) => v.join(" "),
                };
                stage.author = Some(t.clone());
                let by = stage.nop(&format!("MAINTAINER {t}"));
                self.step_image(stage, &by, Work::Config)
            }
            "HEALTHCHECK" => {
                let hc = super::steps::healthcheck(inst)?;
                stage.config["Healthcheck"] = hc;
                let by = stage.nop(&format!("HEALTHCHECK {}", text_of(&inst.args)));
                self.step_image(stage, &by, Work::Config)
            }
            "ARG" => {
                let mut decl = Vec::new();
                for (k, default) in arg_decls(inst)? {
                    let value = match self.build_arg(&k) {
                        Some(v) => Some(v),
                        None => match &default {
                            Some(d) => Some(self.expand(stage, inst, d)?),
                            None => self.global_args.get(&k).cloned(),
                        },
                    };
                    decl.push(match &default {
                        Some(d) => format!("{k}={d}"),
                        None => k.clone(),
                    });
                    match value {
                        Some(v) => {
                            stage.args.insert(k, v);
                        }
                        None => {
                            stage.args.remove(&k);
                        }
                    }
                }
                let by = stage.nop(&format!("ARG {}", decl.join(" ")));
                self.step_image(stage, &by, Work::Config)
            }
            "RUN" => {
                let argv = stage.command(&inst.args);
                // The build args this RUN sees are part of its history line and its key.
                let shown: Vec<String> = stage
                    .visible_args()
                    .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let by = if shown.is_empty() {
                    argv.join(" ")
                } else {
                    format!("|{} {} {}", shown.len(), shown.join(" "), argv.join(" "))
                };
                self.step_image(stage, &by, Work::Run(argv))
            }
            "COPY" | "ADD" => {
                let step = self.copy_step(stage, inst)?;
                let by = stage.nop(&step.history(kw));
                self.step_image(
                    stage,
                    &by.replacen("#(nop)  ", "#(nop) ", 1),
                    Work::Copy(Box::new(step)),
                )
            }
            "FROM" => Err(bad(inst.line, "FROM inside a stage")),
            other => Err(bad(inst.line, format!("unknown instruction {other}"))),
        }
    }

    /// Makes the step's image (or takes it from the cache) and moves the stage onto it.
    fn step_image(&mut self, stage: &mut Stage, created_by: &str, work: Work) -> Result<()> {
        let key = format!("{created_by}\n{}", serde_json::to_string(&stage.config)?);
        if !self.o.no_cache {
            if let Some(img) = self.cache.get(&self.store, &stage.image.id, &key) {
                self.say(&format!(" ---> Using cache\n ---> {}\n", img.id.short()));
                self.cached += 1;
                stage.image = img;
                return Ok(());
            }
        }
        // Held from the layer's blob to the image's record: a gc meanwhile would see the
        // blob named by nothing yet and take it.
        let _content = self.store.locks.content_shared()?;
        let layer: Option<CommittedLayer> = match &work {
            Work::Config => None,
            _ => self.in_container(stage, &work)?,
        };
        let created = layerstore::export::rfc3339(self.epoch().unwrap_or_else(layerstore::now));
        let img = layerstore::child::register(
            &self.store,
            &stage.image,
            layerstore::child::Child {
                layer,
                config: stage.config.clone(),
                created,
                created_by: created_by.to_string(),
                comment: None,
                author: stage.author.clone(),
                record_parent: true,
            },
            &[],
        )?;
        self.cache.put(&stage.image.id, &key, &img.id)?;
        self.say(&format!(" ---> {}\n", img.id.short()));
        self.ran += 1;
        stage.image = img;
        Ok(())
    }

    /// The image of the latest earlier stage called `name` (any case).
    pub(super) fn stage_named(&self, name: &str) -> Option<ImageRecord> {
        let name = name.to_ascii_lowercase();
        self.stages
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref() == Some(name.as_str()))
            .map(|(_, i)| i.clone())
    }

    /// `SOURCE_DATE_EPOCH`, from the options or the build arg.
    pub(super) fn epoch(&self) -> Option<u64> {
        self.o.source_date_epoch.or_else(|| {
            self.o
                .build_args
                .get("SOURCE_DATE_EPOCH")
                .and_then(|v| v.parse().ok())
        })
    }
}

fn text_of(a: &Args) -> String {
    match a {
        Args::Text(t) => t.clone(),
        Args::Json(v) => go_list(v),
    }
}

/// Refuses the instructions ONBUILD cannot hold.
fn check_trigger(line: usize, keyword: &str) -> Result<()> {
    if matches!(keyword, "ONBUILD" | "FROM" | "MAINTAINER") {
        return Err(bad(
            line,
            format!("{keyword} is not allowed as an ONBUILD trigger"),
        ));
    }
    Ok(())
}

/// `IMAGE [AS name]` of a FROM line's text.
/// The PATH the classic builder gives a stage whose base sets none (`FROM scratch`, say):
/// Docker's default for Linux, appended to the config's `Env`, so RUN steps find their
/// programs and the built image carries it as `docker build`'s does.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn with_default_path(config: &mut Value) {
    let has_path = config["Env"].as_array().is_some_and(|env| {
        env.iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with("PATH=")))
    });
    if has_path {
        return;
    }
    if let Some(o) = config.as_object_mut() {
        let env = o.entry("Env").or_insert_with(|| json!([]));
        if !env.is_array() {
            *env = json!([]);
        }
        if let Some(a) = env.as_array_mut() {
            a.push(json!(format!("PATH={DEFAULT_PATH}")));
        }
    }
}

fn from_parts(text: &str, line: usize) -> Result<(String, Option<String>)> {
    let w: Vec<&str> = text.split_whitespace().collect();
    match w.as_slice() {
        [img] => Ok((img.to_string(), None)),
        [img, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let name = name.to_ascii_lowercase();
            if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(bad(line, format!("invalid stage name {name:?}: use letters, digits, _ . -, starting with a letter")));
            }
            Ok((img.to_string(), Some(name)))
        }
        _ => Err(bad(line, "FROM takes an image and optionally AS name")),
    }
}

/// `ARG NAME[=default] ...`.
fn arg_decls(inst: &Instruction) -> Result<Vec<(String, Option<String>)>> {
    let text = text_of(&inst.args);
    let words = config_change::words(&text, &text).map_err(|e| bad(inst.line, e))?;
    if words.is_empty() {
        return Err(bad(inst.line, "ARG needs a name"));
    }
    words
        .into_iter()
        .map(|w| {
            let (k, v) = match w.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (w.clone(), None),
            };
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad(inst.line, format!("invalid ARG name {k:?}")));
            }
            Ok((k, v))
        })
        .collect()
}
