//! The verbs of `../shared/design/cli.md`, each a thin layer over the library crates.

mod bench;
mod bench_peers;
mod build;
mod containers;
mod images;
mod networks;
mod registry;
mod run;
mod storage;
mod volumes;

use anyhow::Result;
use clap::Subcommand;
use engine::Engine;

/// Every command.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Load images from a docker-archive, OCI archive or OCI layout directory.
    Load(images::LoadArgs),
    /// Save images as a docker-archive or OCI layout.
    Save(images::SaveArgs),
    /// Import a rootfs tarball as a one-layer image.
    Import(images::ImportArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Give an image another name.
    Tag(images::TagArgs),
    /// Remove images.
    Rmi(images::RmiArgs),
    /// Show an image's layers and how they were made.
    History(images::HistoryArgs),
    /// Show images or containers as JSON.
    Inspect(images::InspectArgs),
    /// Pull an image from a registry.
    Pull(registry::PullArgs),
    /// Push an image to a registry.
    Push(registry::PushArgs),
    /// Store credentials for a registry.
    Login(registry::LoginArgs),
    /// Create a container (its read-write layer and runtime spec) from an image.
    Create(containers::CreateArgs),
    /// Create and start a container.
    Run(run::RunArgs),
    /// Start created or stopped containers.
    Start(run::StartArgs),
    /// Run a command in a running container.
    Exec(run::ExecArgs),
    /// Stop containers (SIGTERM, then SIGKILL after -t seconds).
    Stop(run::StopArgs),
    /// Send a signal to containers.
    Kill(run::KillArgs),
    /// Freeze every process of containers.
    Pause(run::PauseArgs),
    /// Thaw paused containers.
    Unpause(run::PauseArgs),
    /// Rename a container.
    Rename(run::RenameArgs),
    /// Wait for containers to exit and print their exit codes.
    Wait(run::WaitArgs),
    /// Show a container's output.
    Logs(run::LogsArgs),
    /// Copy files between a container and the host (either side CONTAINER:PATH).
    Cp(volumes::CpArgs),
    /// Manage named volumes.
    Volume {
        #[command(subcommand)]
        cmd: volumes::VolumeCmd,
    },
    /// Manage networks.
    Network {
        #[command(subcommand)]
        cmd: networks::NetworkCmd,
    },
    /// List a container's published ports.
    Port(networks::PortArgs),
    /// Forward a container's published ports (started with it; not for people).
    #[command(name = "port-proxy", hide = true)]
    PortProxy(networks::PortProxyArgs),
    /// Mount a container's rootfs and print its path.
    Mount(containers::NameArg),
    /// Release a mount taken by `mount`.
    Umount(containers::NameArg),
    /// Remove containers.
    Rm(containers::RmArgs),
    /// List containers.
    Ps(containers::PsArgs),
    /// List what a container changed (A added, C changed, D deleted).
    Diff(containers::NameArg),
    /// Make a new image from a container's changes.
    Commit(containers::CommitArgs),
    /// Write a container's filesystem as a tar.
    Export(containers::ExportArgs),
    /// Show the storage driver, backing filesystem and every driver's support here.
    Info(storage::InfoArgs),
    /// Compare the storage drivers on the same work: a table, JSON and an HTML chart.
    Bench(bench::BenchArgs),
    /// Move every image and container to another storage driver.
    Migrate(storage::MigrateArgs),
    /// Verify every blob, layer, image and container.
    Fsck(storage::FsckArgs),
    /// Write recent writes to disk now (strata does it in the background after each command).
    Flush {
        /// Wait this long first (the background flush lets a following command run first).
        #[arg(long, default_value_t = 0, hide = true)]
        after_ms: u64,
    },
    /// Free what no image or container uses, waiting for work in progress (started by
    /// `rmi` while a pull runs; `system prune` is the command for people).
    #[command(hide = true)]
    Gc,
    /// Serve the Docker Engine API (the docker CLI and SDKs drive strata through it).
    Daemon(storage::DaemonArgs),
    /// Show what happened to containers and images.
    Events(storage::EventsArgs),
    /// Run a container in the background, or exec in one (started by strata; not for people).
    #[command(hide = true)]
    Shim {
        #[command(subcommand)]
        cmd: run::ShimCmd,
    },
    /// Serve one FUSE union mount (started by the aufs driver's mount; not for people).
    #[command(name = "unionfs-serve", hide = true)]
    UnionfsServe(storage::UnionfsServeArgs),
    /// Disk usage and cleanup.
    System {
        #[command(subcommand)]
        cmd: storage::SystemCmd,
    },
}

/// What every command works through: the engine over the configured data root.
pub struct Context {
    pub engine: Engine,
}

impl Context {
    /// The engine with `cfg`; on a terminal, long work draws its progress on stderr
    /// (piped, it stays quiet).
    pub fn new(cfg: engine::Config) -> Context {
        let mut engine = Engine::new(cfg);
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            engine.set_progress(std::sync::Arc::new(|what, done, total| {
                let width = 30;
                let filled = (done * width)
                    .checked_div(total)
                    .unwrap_or(width)
                    .min(width);
                eprint!(
                    "\r{what} [{}{}] {done}/{total}",
                    "=".repeat(filled),
                    " ".repeat(width - filled)
                );
                if done >= total {
                    eprintln!();
                }
            }));
        }
        Context { engine }
    }
}

/// Runs one command; returns the exit status.
pub fn dispatch(ctx: &Context, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Build(a) => build::build(ctx, a),
        Command::Load(a) => images::load(ctx, a),
        Command::Save(a) => images::save(ctx, a),
        Command::Import(a) => images::import(ctx, a),
        Command::Images(a) => images::images(ctx, a),
        Command::Tag(a) => images::tag(ctx, a),
        Command::Rmi(a) => images::rmi(ctx, a),
        Command::History(a) => images::history(ctx, a),
        Command::Inspect(a) => images::inspect(ctx, a),
        Command::Pull(a) => registry::pull(ctx, a),
        Command::Push(a) => registry::push(ctx, a),
        Command::Login(a) => registry::login(ctx, a),
        Command::Create(a) => containers::create(ctx, a),
        Command::Run(a) => run::run(ctx, a),
        Command::Start(a) => run::start(ctx, a),
        Command::Exec(a) => run::exec(ctx, a),
        Command::Stop(a) => run::stop(ctx, a),
        Command::Kill(a) => run::kill(ctx, a),
        Command::Wait(a) => run::wait(ctx, a),
        Command::Pause(a) => run::pause(ctx, a),
        Command::Unpause(a) => run::unpause(ctx, a),
        Command::Rename(a) => run::rename(ctx, a),
        Command::Logs(a) => run::logs(ctx, a),
        Command::Cp(a) => volumes::cp(ctx, a),
        Command::Volume { cmd } => volumes::volume(ctx, cmd),
        Command::Network { cmd } => networks::network(ctx, cmd),
        Command::Port(a) => networks::port(ctx, a),
        Command::PortProxy(a) => networks::port_proxy(a),
        Command::Mount(a) => containers::mount(ctx, a),
        Command::Umount(a) => containers::umount(ctx, a),
        Command::Rm(a) => containers::rm(ctx, a),
        Command::Ps(a) => containers::ps(ctx, a),
        Command::Diff(a) => containers::diff(ctx, a),
        Command::Commit(a) => containers::commit(ctx, a),
        Command::Export(a) => containers::export(ctx, a),
        Command::Info(a) => storage::info(ctx, a),
        Command::Fsck(a) => storage::fsck(ctx, a),
        Command::Flush { after_ms } => {
            std::thread::sleep(std::time::Duration::from_millis(after_ms));
            ctx.engine.flush()?;
            Ok(0)
        }
        Command::Gc => {
            ctx.engine.prune()?;
            Ok(0)
        }
        Command::Migrate(a) => storage::migrate(ctx, a),
        Command::Bench(a) => bench::bench(ctx, a),
        Command::System { cmd } => storage::system(ctx, cmd),
        Command::Events(a) => storage::events(ctx, a),
        Command::Daemon(a) => storage::daemon(ctx, a),
        Command::Shim { cmd } => run::shim(ctx, cmd),
        Command::UnionfsServe(a) => storage::unionfs_serve(a),
    }
}

/// Runs the hidden FUSE union server verb (no store involved).
pub fn storage_unionfs_serve(a: storage::UnionfsServeArgs) -> Result<i32> {
    storage::unionfs_serve(a)
}

/// `--format json` or a table.
#[derive(clap::ValueEnum, Clone, Debug, PartialEq, Eq)]
pub enum OutFormat {
    Table,
    Json,
}

/// Prints a JSON document.
pub fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
