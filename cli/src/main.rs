//! `strata`: Docker's storage layer as a daemonless command-line tool.

mod commands;
mod config;
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
    /// error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() {
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
            eprintln!("strata: {e:#}");
            std::process::exit(EXIT_STRATA);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    if !["error", "warn", "info", "debug", "trace"].contains(&cli.log_level.as_str()) {
        anyhow::bail!(
            "invalid --log-level {:?}: use error, warn, info, debug or trace",
            cli.log_level
        );
    }
    if let commands::Command::UnionfsServe(a) = cli.command {
        // A mount's server process: no store, no config.
        return commands::storage_unionfs_serve(a);
    }
    let ctx = commands::Context::new(&cli)?;
    commands::dispatch(&ctx, cli.command)
}
