//! `strata`: Docker's storage layer as a daemonless command-line tool.

mod commands;
mod output;

use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;

/// Exit status for strata's own failures (bad flag, store error, image not found).
const EXIT_STRATA: i32 = 125;

#[derive(Parser, Debug)]
#[command(name = "strata", version, about = "Container image storage: drivers, layers, images", long_about = None)]
pub struct Cli {
    /// Where everything lives.
    #[arg(long, global = true, env = "STRATA_DATA_ROOT")]
    data_root: Option<PathBuf>,
    /// overlay2, aufs, btrfs or vfs.
    #[arg(long, global = true, env = "STRATA_STORAGE_DRIVER")]
    storage_driver: Option<String>,
    /// Driver option KEY=VALUE (repeatable), e.g. vfs.reflink=false.
    #[arg(long = "storage-opt", global = true)]
    storage_opt: Vec<String>,
    /// daemon.json-style configuration file.
    #[arg(long, global = true, env = "STRATA_CONFIG")]
    config: Option<PathBuf>,
    /// What to log to stderr: error, warn (default), info, debug or trace (also daemon.json
    /// `log-level`).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() {
    // A helper spawned detached (shim, FUSE server, background flush) leaves its
    // spawner's session and process tree first, while it has one thread.
    fsutil::helper::detach_self();
    // Die quietly on a closed pipe (`strata images | head`), as Unix tools do.
    // SAFETY: restoring the default disposition of one signal at startup.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_STRATA } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            match hint(&e) {
                Some(h) => eprintln!("strata: {e:#} ({h})"),
                None => eprintln!("strata: {e:#}"),
            }
            std::process::exit(EXIT_STRATA);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    if let commands::Command::UnionfsServe(a) = cli.command {
        // A mount's server process: no store, no config.
        init_logging(cli.log_level.as_deref().unwrap_or("warn"))?;
        return commands::storage_unionfs_serve(a);
    }
    let flags = engine::Flags {
        data_root: cli.data_root.clone(),
        storage_driver: cli.storage_driver.clone(),
        storage_opts: cli.storage_opt.clone(),
    };
    let (cfg, file) = engine::config::load(cli.config.as_deref(), &flags)?;
    let level = cli
        .log_level
        .clone()
        .or_else(|| file.log_level.clone())
        .unwrap_or_else(|| "warn".into());
    init_logging(&level)?;
    let ctx = commands::Context::new(cfg);
    // What a command wrote is flushed to disk after it, in the background.
    let flush_after = !matches!(
        cli.command,
        commands::Command::Flush { .. }
            | commands::Command::Shim { .. }
            | commands::Command::Daemon(_)
            | commands::Command::UnionfsServe(_)
    );
    let result = commands::dispatch(&ctx, cli.command);
    if flush_after {
        if let Err(e) = ctx.engine.flush_in_background() {
            tracing::warn!(error = %e, "recent writes stay unflushed until the next command");
        }
    }
    result
}

/// Logs strata's `tracing` events at `level` and above to stderr: what a user needs to
/// see when something is slow or refused (where time went, which driver and why).
fn init_logging(level: &str) -> Result<()> {
    let max = match level {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "info" => tracing::Level::INFO,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        other => anyhow::bail!(
            "invalid log level {other:?} (--log-level or daemon.json log-level): use error, warn, info, debug or trace"
        ),
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_max_level(max)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    Ok(())
}

/// The command that helps with an error, where there is one (the libraries say what is
/// wrong; only the CLI knows its own verbs).
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    use engine::EngineError;
    use layerstore::StoreError;
    let ee = e.chain().find_map(|c| c.downcast_ref::<EngineError>())?;
    match ee.root() {
        EngineError::Store(StoreError::NoSuchImage(_)) => Some("see `strata images`"),
        EngineError::Store(StoreError::NoSuchContainer(_)) => Some("see `strata ps -a`"),
        EngineError::Registry(registry::RegistryError::Unauthorized(_)) => {
            Some("log in with `strata login`")
        }
        _ => None,
    }
}
