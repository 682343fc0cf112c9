//! Named volumes (`volume create|ls|rm|inspect|prune`) and `cp` between a container and the
//! host (the engine resolves container paths inside the container, never following a
//! symlink out).

use super::{print_json, Context, OutFormat};
use crate::output::{print_table, table};
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use engine::volumes::volume_json;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume.
    Create { name: String },
    /// List volumes.
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: OutFormat,
    },
    /// Remove volumes (refused while a container uses one).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show volumes as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every volume no container uses.
    Prune,
}

pub fn volume(ctx: &Context, cmd: VolumeCmd) -> Result<i32> {
    match cmd {
        VolumeCmd::Create { name } => {
            println!("{}", ctx.engine.create_volume(&name)?.name);
        }
        VolumeCmd::Ls { quiet, format } => {
            let all = ctx.engine.volumes()?;
            if format == OutFormat::Json {
                print_json(&json!(all.iter().map(volume_json).collect::<Vec<_>>()))?;
            } else if quiet {
                all.iter().for_each(|v| println!("{}", v.name));
            } else {
                let mut t = table(&["DRIVER", "VOLUME NAME"]);
                for v in &all {
                    t.add_row(vec!["local".to_string(), v.name.clone()]);
                }
                print_table(&t);
            }
        }
        VolumeCmd::Rm { names } => {
            for n in &names {
                ctx.engine.remove_volume(n)?;
                println!("{n}");
            }
        }
        VolumeCmd::Inspect { names } => {
            let out = names
                .iter()
                .map(|n| ctx.engine.volume(n).map(|v| volume_json(&v)))
                .collect::<engine::Result<Vec<_>>>()?;
            print_json(&json!(out))?;
        }
        VolumeCmd::Prune => {
            for n in ctx.engine.prune_volumes()? {
                println!("Deleted: {n}");
            }
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// CONTAINER:PATH or a host path.
    src: String,
    /// CONTAINER:PATH or a host path.
    dst: String,
}

pub fn cp(ctx: &Context, a: CpArgs) -> Result<i32> {
    let spec = engine::cp::CopySpec::parse(&a.src, &a.dst)?;
    ctx.engine
        .copy(&spec)
        .with_context(|| format!("cp {} {}", a.src, a.dst))?;
    Ok(0)
}
