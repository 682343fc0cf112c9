//! `bench --compare`: the image steps (load, pull, unpack) through a peer on the same
//! machine in the same run, so strata's numbers sit next to Docker's and umoci's in one
//! table and chart. Also the pieces both sides need: a local distribution registry holding
//! the image, and the image as a docker-archive and as an OCI layout.

use anyhow::{anyhow, bail, Context as _, Result};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A peer to compare with.
#[derive(Debug, Clone)]
pub enum Peer {
    /// A dockerd at this socket, driven by the `docker` CLI.
    Docker(PathBuf),
    /// `umoci unpack` (the unpack step only).
    Umoci,
}

impl Peer {
    /// `docker`, `docker=SOCKET` or `umoci`.
    pub fn parse(s: &str) -> Result<Peer> {
        match s.split_once('=') {
            None if s == "docker" => Ok(Peer::Docker("/var/run/docker.sock".into())),
            Some(("docker", sock)) => Ok(Peer::Docker(sock.into())),
            None if s == "umoci" => Ok(Peer::Umoci),
            _ => bail!("unknown --compare {s:?}: use docker, docker=SOCKET or umoci"),
        }
    }

    /// Its column name.
    pub fn name(&self) -> &'static str {
        match self {
            Peer::Docker(_) => "docker",
            Peer::Umoci => "umoci",
        }
    }

    /// Why it cannot be used here, if it cannot.
    pub fn unavailable(&self) -> Option<String> {
        match self {
            Peer::Docker(sock) => {
                if which("docker").is_none() {
                    return Some("no docker CLI on PATH".into());
                }
                match std::os::unix::net::UnixStream::connect(sock) {
                    Ok(_) => None,
                    Err(e) => Some(format!("no dockerd at {}: {e}", sock.display())),
                }
            }
            Peer::Umoci => which("umoci")
                .is_none()
                .then(|| "no umoci on PATH".to_string()),
        }
    }
}

/// `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The image in the forms the steps read, made once.
pub struct Forms {
    /// docker-archive (what `docker load` takes).
    pub archive: PathBuf,
    /// OCI layout directory and its tag.
    pub oci: PathBuf,
    pub oci_tag: String,
    /// Pushed to the local registry, when there is one.
    pub pushed: Option<String>,
    /// A build context whose Dockerfile takes the base image as `--build-arg BASE=`.
    pub build_context: PathBuf,
}

/// The build step's Dockerfile: FROM the image and 10 steps, 5 of them RUN, as a
/// typical application image has (files copied in, commands run over them).
const BENCH_DOCKERFILE: &str = "ARG BASE
FROM $BASE
ENV BENCH=1
WORKDIR /bench
COPY files/ ./files/
RUN echo one > one
RUN cp -r files files2
RUN echo three > three && ls > list
LABEL bench=build
RUN rm -rf files2
RUN i=0; while [ $i -lt 100 ]; do echo $i > n$i; i=$((i+1)); done
CMD [\"sh\"]
";

/// Writes the build step's context under `dir`: the Dockerfile and 100 small files.
fn write_build_context(dir: &Path) -> Result<PathBuf> {
    let ctx = dir.join("build-context");
    std::fs::create_dir_all(ctx.join("files"))?;
    std::fs::write(ctx.join("Dockerfile"), BENCH_DOCKERFILE)?;
    for i in 0..100 {
        std::fs::write(
            ctx.join("files").join(format!("f{i:03}.txt")),
            format!("file {i}\n").repeat(i + 1),
        )?;
    }
    Ok(ctx)
}

/// A local registry on 127.0.0.1 for the pull step, stopped when dropped.
pub struct Registry {
    child: Child,
    pub addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts Debian's `docker-registry` with its storage under `dir`; `None` without it.
    pub fn start(dir: &Path) -> Result<Option<Registry>> {
        let Some(bin) = which("docker-registry") else {
            return Ok(None);
        };
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        std::fs::create_dir_all(dir)?;
        let cfg = dir.join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry")?;
        let reg = Registry { child, addr };
        let t0 = Instant::now();
        while TcpStream::connect(&reg.addr).is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("docker-registry did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(reg))
    }
}

/// Loads `image` into a scratch store at `root` with `exe` and writes the forms the steps
/// need under `dir`; pushes it to `registry` when given.
pub fn prepare(
    exe: &Path,
    config: &Path,
    root: &Path,
    image: &Path,
    dir: &Path,
    registry: Option<&Registry>,
) -> Result<Forms> {
    let strata = |args: &[&str]| {
        run(Command::new(exe)
            .arg("--config")
            .arg(config)
            .arg("--data-root")
            .arg(root)
            .args(args))
    };
    let loaded = strata(&["load", "-i", &image.to_string_lossy()])?;
    let name = loaded
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .ok_or_else(|| anyhow!("the image archive named no image"))?
        .trim()
        .to_string();
    let archive = dir.join("image.docker.tar");
    strata(&["save", "-o", &archive.to_string_lossy(), &name])?;
    let oci = dir.join("image.oci");
    strata(&[
        "save",
        "--format",
        "oci",
        "-o",
        &oci.to_string_lossy(),
        &name,
    ])?;
    let oci_tag = name.rsplit(':').next().unwrap_or("latest").to_string();
    let pushed = match registry {
        Some(r) => {
            let dest = format!("{}/bench/image:1", r.addr);
            strata(&["push", "--tls-verify=false", &name, &dest])?;
            Some(dest)
        }
        None => None,
    };
    Ok(Forms {
        archive,
        oci,
        oci_tag,
        pushed,
        build_context: write_build_context(dir)?,
    })
}

/// One run of the peer's image steps: step -> milliseconds. `scratch` is a directory on
/// the benchmark's filesystem the run may fill.
pub fn one_run(peer: &Peer, forms: &Forms, scratch: &Path) -> Result<Vec<(&'static str, f64)>> {
    let mut t = Vec::new();
    match peer {
        Peer::Docker(sock) => {
            let host = format!("unix://{}", sock.display());
            let docker =
                |args: &[&str]| run(Command::new("docker").env("DOCKER_HOST", &host).args(args));
            let clean = |image: &str| {
                let _ = docker(&["rm", "-f", "strata-bench"]);
                let _ = docker(&["rmi", "-f", image]);
            };
            let loaded = {
                let t0 = Instant::now();
                let out = docker(&["load", "-i", &forms.archive.to_string_lossy()])?;
                t.push(("load", ms(t0)));
                out.lines()
                    .find_map(|l| l.strip_prefix("Loaded image: "))
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| anyhow!("docker load named no image"))?
            };
            clean(&loaded);
            // unpack: the image to a container's filesystem (docker makes the container's
            // layer at create; it mounts it at start).
            let t0 = Instant::now();
            docker(&["load", "-i", &forms.archive.to_string_lossy()])?;
            docker(&["create", "--name", "strata-bench", &loaded, "true"])?;
            t.push(("unpack", ms(t0)));
            clean(&loaded);
            if let Some(p) = &forms.pushed {
                let t0 = Instant::now();
                docker(&["pull", "-q", p])?;
                t.push(("pull", ms(t0)));
                clean(p);
            }
            // build: the classic builder (what `strata build` does), no cache.
            docker(&["load", "-i", &forms.archive.to_string_lossy()])?;
            let t0 = Instant::now();
            run(Command::new("docker")
                .env("DOCKER_HOST", &host)
                .env("DOCKER_BUILDKIT", "0")
                .args(["build", "-q", "--no-cache", "-t", "strata-bench:build"])
                .arg("--build-arg")
                .arg(format!("BASE={loaded}"))
                .arg(&forms.build_context))?;
            t.push(("build", ms(t0)));
            clean("strata-bench:build");
            clean(&loaded);
        }
        Peer::Umoci => {
            let dest = scratch.join("umoci-bundle");
            let t0 = Instant::now();
            run(Command::new("umoci")
                .arg("unpack")
                .arg("--image")
                .arg(format!("{}:{}", forms.oci.display(), forms.oci_tag))
                .arg(&dest))?;
            t.push(("unpack", ms(t0)));
            let _ = std::fs::remove_dir_all(&dest);
        }
    }
    Ok(t)
}
