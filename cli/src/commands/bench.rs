//! `bench`: the same work on each storage driver, on the same backing filesystem (a fresh
//! loop-mounted one: btrfs when btrfs is compared, so every driver shares it, else ext4),
//! timed end to end through the `strata` binary itself as a user would run it. Prints a
//! table of median (min–max) per step and driver, and writes JSON and a self-contained
//! HTML page with a bar chart.

use super::bench_peers::{self, Forms, Peer};
use super::Context;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The steps, in order, with what each does.
const STEPS: &[(&str, &str)] = &[
    ("load", "load the image (docker-archive, uncompressed)"),
    (
        "flush",
        "write what load left in the page cache to disk (strata flush; else in the background)",
    ),
    ("create+mount", "create a container and mount its rootfs"),
    ("start", "run --rm IMAGE true"),
    (
        "port",
        "send --port-mb MiB from the host through a published port (-p) to a container",
    ),
    (
        "write",
        "write 1,000 small files and one large file in the container",
    ),
    ("read", "read them back"),
    ("commit", "commit the container"),
    ("diff", "diff the container"),
    ("remove", "umount, rm and rmi"),
    ("migrate", "migrate a loaded store to another driver"),
    (
        "unpack",
        "the image's OCI layout to a mounted rootfs (load + create + mount)",
    ),
    ("pull", "pull the image from a local registry on 127.0.0.1"),
    (
        "build",
        "build a Dockerfile of 10 steps (5 RUN) on the image, no cache",
    ),
];

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Drivers to compare (default: every driver that works here).
    #[arg(long, value_delimiter = ',')]
    drivers: Vec<String>,
    /// An image archive (docker-archive or OCI), or the name of an image in the store.
    #[arg(long)]
    image: String,
    /// Runs per driver.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a self-contained HTML page with a chart here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Size of the large file, in MiB.
    #[arg(long, default_value_t = 100)]
    big_file_mb: u64,
    /// MiB sent through the published port.
    #[arg(long, default_value_t = 1024)]
    port_mb: u64,
    /// Where to make the scratch filesystem.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Also time load, pull and unpack through a peer in the same run: `docker` (the
    /// dockerd at /var/run/docker.sock), `docker=SOCKET`, or `umoci` (repeatable).
    #[arg(long)]
    compare: Vec<String>,
}

struct Runner {
    exe: PathBuf,
    config: PathBuf,
}

impl Runner {
    fn run(&self, root: &Path, driver: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.exe)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-root")
            .arg(root)
            .arg("--storage-driver")
            .arg(driver)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.exe.display()))?;
        if !out.status.success() {
            bail!(
                "strata {} ({driver}) failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Bytes in use on the filesystem holding `path`, after flushing it (so delayed
/// allocation is counted, and btrfs's shared extents count once).
fn used_bytes(path: &Path) -> u64 {
    if let Ok(fd) = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    ) {
        let _ = rustix::fs::syncfs(&fd);
    }
    rustix::fs::statvfs(path)
        .map(|s| (s.f_blocks - s.f_bfree) * s.f_frsize)
        .unwrap_or(0)
}

/// How much the write and port steps move, in MiB.
#[derive(Clone, Copy)]
struct Sizes {
    big: u64,
    port_mb: u64,
}

/// One run of every step on `driver`; returns step -> milliseconds, and the bytes the data
/// root took on the filesystem after the load and the writes.
fn one_run(
    r: &Runner,
    base: &Path,
    driver: &str,
    image: &Path,
    sizes: Sizes,
    run: usize,
    forms: &Forms,
) -> Result<(BTreeMap<String, f64>, u64)> {
    let Sizes { big, port_mb } = sizes;
    let root = base.join(format!("{driver}-{run}"));
    let mut t: BTreeMap<String, f64> = BTreeMap::new();
    let used_before = used_bytes(base);
    let t0 = Instant::now();
    let loaded = r.run(
        &root,
        driver,
        &["load", "-i", &forms.archive.to_string_lossy()],
    )?;
    t.insert("load".into(), ms(t0));
    // The flush load leaves for later, timed on its own so it does not land in the
    // steps after it.
    let t0 = Instant::now();
    r.run(&root, driver, &["flush"])?;
    t.insert("flush".into(), ms(t0));
    let name = loaded
        .lines()
        .find_map(|l| {
            l.strip_prefix("Loaded image: ")
                .or(l.strip_prefix("Loaded image ID: "))
        })
        .ok_or_else(|| anyhow!("the image archive named no image"))?
        .trim()
        .to_string();
    let t0 = Instant::now();
    r.run(&root, driver, &["create", "--name", "b", &name, "true"])?;
    let rootfs = PathBuf::from(r.run(&root, driver, &["mount", "b"])?.trim());
    t.insert("create+mount".into(), ms(t0));
    let t0 = Instant::now();
    r.run(&root, driver, &["run", "--rm", &name, "true"])?;
    t.insert("start".into(), ms(t0));
    t.insert("port".into(), port_step(r, &root, driver, &name, port_mb)?);
    let t0 = Instant::now();
    let dir = rootfs.join("bench");
    std::fs::create_dir_all(&dir)?;
    for i in 0..1000 {
        std::fs::write(dir.join(format!("f{i:04}")), format!("small file {i}\n"))?;
    }
    let chunk = vec![0x5au8; 1 << 20];
    {
        use std::io::Write;
        let mut f = std::fs::File::create(dir.join("big"))?;
        for _ in 0..big {
            f.write_all(&chunk)?;
        }
    }
    t.insert("write".into(), ms(t0));
    let t0 = Instant::now();
    let mut n = 0usize;
    for e in std::fs::read_dir(&dir)? {
        n += std::fs::read(e?.path())?.len();
    }
    t.insert("read".into(), ms(t0));
    if n < (big << 20) as usize {
        bail!("read back {n} bytes, less than written");
    }
    let disk = used_bytes(base).saturating_sub(used_before);
    r.run(&root, driver, &["umount", "b"])?;
    let t0 = Instant::now();
    r.run(&root, driver, &["commit", "b", "bench:commit"])?;
    t.insert("commit".into(), ms(t0));
    let t0 = Instant::now();
    r.run(&root, driver, &["diff", "b"])?;
    t.insert("diff".into(), ms(t0));
    let t0 = Instant::now();
    r.run(&root, driver, &["rm", "b"])?;
    r.run(&root, driver, &["rmi", "bench:commit", &name])?;
    t.insert("remove".into(), ms(t0));
    // Migrate: a freshly loaded store to another driver.
    r.run(&root, driver, &["load", "-i", &image.to_string_lossy()])?;
    let other = if driver == "vfs" { "overlay2" } else { "vfs" };
    let t0 = Instant::now();
    r.run(&root, driver, &["migrate", "--to", other, "--prune"])?;
    t.insert("migrate".into(), ms(t0));
    let _ = std::fs::remove_dir_all(&root);
    // Unpack: the OCI layout to a mounted rootfs, in a fresh store.
    let root = base.join(format!("{driver}-{run}-unpack"));
    let t0 = Instant::now();
    let out = r.run(&root, driver, &["load", "-i", &forms.oci.to_string_lossy()])?;
    let oci_name = out
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .ok_or_else(|| anyhow!("the OCI layout named no image"))?
        .trim()
        .to_string();
    r.run(&root, driver, &["create", "--name", "u", &oci_name, "true"])?;
    r.run(&root, driver, &["mount", "u"])?;
    t.insert("unpack".into(), ms(t0));
    r.run(&root, driver, &["flush"])?;
    r.run(&root, driver, &["umount", "u"])?;
    // Build: the same Dockerfile docker's classic builder gets, in a store with no cache.
    let t0 = Instant::now();
    r.run(
        &root,
        driver,
        &[
            "build",
            "-q",
            "--no-cache",
            "--build-arg",
            &format!("BASE={oci_name}"),
            &forms.build_context.to_string_lossy(),
        ],
    )?;
    t.insert("build".into(), ms(t0));
    let _ = std::fs::remove_dir_all(&root);
    if let Some(p) = &forms.pushed {
        let root = base.join(format!("{driver}-{run}-pull"));
        let t0 = Instant::now();
        r.run(&root, driver, &["pull", "--tls-verify=false", p])?;
        t.insert("pull".into(), ms(t0));
        r.run(&root, driver, &["flush"])?;
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok((t, disk))
}

/// The container side of the port step: perl reading 1 MiB at a time where the image has
/// it, else busybox's nc (which reads in small pieces, so it is the slower end).
const SINK: &str = "if command -v perl >/dev/null; then exec perl -MIO::Socket::INET -e '$l=IO::Socket::INET->new(LocalPort=>5001,Listen=>1,ReuseAddr=>1) or die; $c=$l->accept; while(sysread($c,$b,1<<20)){} close $c'; else exec nc -l -p 5001 >/dev/null; fi";

/// Sends `mb` MiB from the host through a port published to a container that reads and
/// drops them; returns the milliseconds from connect to the container's close.
fn port_step(r: &Runner, root: &Path, driver: &str, image: &str, mb: u64) -> Result<f64> {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    r.run(
        root,
        driver,
        &[
            "run",
            "-d",
            "--name",
            "sink",
            "-p",
            &format!("127.0.0.1:{port}:5001"),
            image,
            "sh",
            "-c",
            SINK,
        ],
    )?;
    let chunk = vec![0u8; 1 << 20];
    let send = || -> std::io::Result<f64> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        let t0 = Instant::now();
        for _ in 0..mb {
            s.write_all(&chunk)?;
        }
        s.shutdown(std::net::Shutdown::Write)?;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)?;
        Ok(ms(t0))
    };
    // Sent once the container listens (LISTEN on port 5001 in its /proc/net/tcp or tcp6).
    let mut listening = false;
    for _ in 0..200 {
        let probe = [
            "exec",
            "sink",
            "grep",
            "-qsE",
            ":1389 0+:0000 0A",
            "/proc/net/tcp",
            "/proc/net/tcp6",
        ];
        if r.run(root, driver, &probe).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let result = if listening {
        send().context("sending through the published port")
    } else {
        Err(anyhow!("the container never listened on port 5001"))
    };
    // The sink exits 0 once it has read everything to the end.
    if result.is_ok() && r.run(root, driver, &["wait", "sink"])?.trim() != "0" {
        bail!("the container reading from the published port failed");
    }
    r.run(root, driver, &["rm", "-f", "sink"])?;
    result
}

fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let med = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (med, v[0], v[v.len() - 1])
}

/// A self-contained HTML page: a grouped bar chart (SVG) and the table.
fn html(doc: &serde_json::Value, drivers: &[String]) -> String {
    let colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"];
    let steps: Vec<&str> = STEPS.iter().map(|(s, _)| *s).collect();
    let max = drivers
        .iter()
        .flat_map(|d| steps.iter().map(move |s| (d, s)))
        .filter_map(|(d, s)| doc["drivers"][d]["steps"][s]["median_ms"].as_f64())
        .fold(1.0f64, f64::max);
    let (w, row_h, bar_h, left) = (900.0, 18.0 * drivers.len() as f64 + 14.0, 16.0, 130.0);
    let height = row_h * steps.len() as f64 + 40.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    for (i, s) in steps.iter().enumerate() {
        let y0 = 10.0 + i as f64 * row_h;
        svg += &format!(r#"<text x="0" y="{}">{s}</text>"#, y0 + 14.0);
        for (j, d) in drivers.iter().enumerate() {
            let v = doc["drivers"][d]["steps"][s]["median_ms"]
                .as_f64()
                .unwrap_or(0.0);
            // Log-ish scale keeps 1 ms and 1 s readable on one chart.
            let len = ((1.0 + v).ln() / (1.0 + max).ln()) * (w - left - 90.0);
            let y = y0 + j as f64 * 18.0;
            svg += &format!(
                r#"<rect x="{left}" y="{y}" width="{len:.1}" height="{bar_h}" fill="{}"><title>{d} {s}: {v:.1} ms</title></rect><text x="{:.1}" y="{:.1}">{v:.1} ms</text>"#,
                colors[j % colors.len()],
                left + len + 4.0,
                y + 12.0
            );
        }
    }
    let legend_y = height - 12.0;
    for (j, d) in drivers.iter().enumerate() {
        let x = left + j as f64 * 110.0;
        svg += &format!(
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{legend_y}">{d}</text>"#,
            legend_y - 10.0,
            colors[j % colors.len()],
            x + 16.0
        );
    }
    svg += "</svg>";
    let mut rows = String::new();
    for (s, what) in STEPS {
        rows += &format!("<tr><td>{s}</td><td>{what}</td>");
        for d in drivers {
            let c = &doc["drivers"][d]["steps"][s];
            rows += &match c["median_ms"].as_f64() {
                Some(m) => format!(
                    "<td>{m:.1} ({:.1}–{:.1})</td>",
                    c["min_ms"].as_f64().unwrap_or(0.0),
                    c["max_ms"].as_f64().unwrap_or(0.0)
                ),
                None => "<td>-</td>".into(),
            };
        }
        rows += "</tr>";
    }
    let mut disk = String::from(
        "<tr><td>disk</td><td>space used after load and writes (filesystem delta)</td>",
    );
    for d in drivers {
        disk += &format!(
            "<td>{:.1} MB</td>",
            doc["drivers"][d]["disk_bytes"].as_f64().unwrap_or(0.0) / 1e6
        );
    }
    disk += "</tr>";
    let head: String = drivers.iter().map(|d| format!("<th>{d}</th>")).collect();
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>strata storage benchmark</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(-n+2){{text-align:left}}</style></head>
<body><h1>strata storage drivers, side by side</h1>
<p>Image <code>{}</code>, {} run(s) per driver, backing filesystem {} (the same for every driver). Median milliseconds per step (log scale); hover a bar for its value.</p>
{svg}
<h2>Median (min–max) ms</h2><table><tr><th>step</th><th>what</th>{head}</tr>{rows}{disk}</table></body></html>"#,
        doc["image"].as_str().unwrap_or(""),
        doc["runs"],
        doc["backing_fs"].as_str().unwrap_or("")
    )
}

pub fn bench(ctx: &Context, a: BenchArgs) -> Result<i32> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let exe = std::env::current_exe()?;
    let work = tempfile_dir(&a.dir)?;
    let config = work.join("daemon.json");
    std::fs::write(&config, b"{}")?;
    // The image as an archive file.
    let image = if Path::new(&a.image).is_file() {
        std::fs::canonicalize(&a.image)?
    } else {
        let out = work.join("image.tar");
        let id = ctx.engine.image_json(&a.image)?["Id"]
            .as_str()
            .unwrap_or(&a.image)
            .to_string();
        ctx.engine
            .save(&[id], &out, layerstore::export::Format::Docker)
            .with_context(|| format!("saving {} for the benchmark", a.image))?;
        out
    };
    let mut drivers: Vec<String> = a.drivers.clone();
    if drivers.is_empty() {
        drivers = vec!["overlay2".into(), "vfs".into()];
        if loopfs::kernel_has("btrfs") {
            drivers.push("btrfs".into());
        }
        if loopfs::kernel_has("fuse") || loopfs::kernel_has("aufs") {
            drivers.push("aufs".into());
        }
    }
    for d in &drivers {
        if !engine::DRIVER_NAMES.contains(&d.as_str()) {
            bail!("unknown driver {d:?}: use overlay2, btrfs, aufs, vfs");
        }
    }
    let fstype = if drivers.iter().any(|d| d == "btrfs") {
        "btrfs"
    } else {
        "ext4"
    };
    let size = (4u64 << 30).max((a.big_file_mb << 20) * 6);
    let mut fs = loopfs::LoopFs::create(fstype, &work.join("fs.img"), &work.join("fs"), size)
        .with_context(|| format!("making a {fstype} filesystem for the benchmark (needs root)"))?;
    let peers = a
        .compare
        .iter()
        .map(|p| Peer::parse(p))
        .collect::<Result<Vec<_>>>()?;
    for p in &peers {
        if let Some(why) = p.unavailable() {
            bail!("--compare {}: {why}", p.name());
        }
    }
    let registry = bench_peers::Registry::start(&work.join("registry"))?;
    if registry.is_none() {
        eprintln!("bench: no docker-registry on PATH: the pull step is skipped");
    }
    let forms = bench_peers::prepare(
        &exe,
        &config,
        &fs.path().join("prepare"),
        &image,
        fs.path(),
        registry.as_ref(),
    )
    .context("preparing the image for the benchmark")?;
    let runner = Runner { exe, config };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut doc = json!({
        "image": a.image,
        "runs": a.runs,
        "backing_fs": fstype,
        "big_file_mb": a.big_file_mb,
        "port_mb": a.port_mb,
        "steps": STEPS.iter().map(|(s, w)| json!({"name": s, "what": w})).collect::<Vec<_>>(),
        "drivers": {},
    });
    let result = (|| -> Result<()> {
        for d in &drivers {
            let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            let mut disk = 0;
            for run in 0..a.runs {
                if tty {
                    eprintln!("bench {d}: run {}/{}", run + 1, a.runs);
                }
                let (t, du) = one_run(
                    &runner,
                    fs.path(),
                    d,
                    &image,
                    Sizes {
                        big: a.big_file_mb,
                        port_mb: a.port_mb,
                    },
                    run,
                    &forms,
                )
                .with_context(|| format!("bench {d}"))?;
                disk = disk.max(du);
                for (k, v) in t {
                    samples.entry(k).or_default().push(v);
                }
            }
            let mut steps = serde_json::Map::new();
            for (k, mut v) in samples {
                let (med, min, max) = stats(&mut v);
                steps.insert(
                    k,
                    json!({"median_ms": med, "min_ms": min, "max_ms": max, "samples": v}),
                );
            }
            doc["drivers"][d] = json!({"steps": steps, "disk_bytes": disk});
        }
        // The peers, run after the drivers in the same session.
        for p in &peers {
            let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for run in 0..a.runs {
                if tty {
                    eprintln!("bench {}: run {}/{}", p.name(), run + 1, a.runs);
                }
                for (k, v) in bench_peers::one_run(p, &forms, fs.path())
                    .with_context(|| format!("bench {}", p.name()))?
                {
                    samples.entry(k.to_string()).or_default().push(v);
                }
            }
            let mut steps = serde_json::Map::new();
            for (k, mut v) in samples {
                let (med, min, max) = stats(&mut v);
                steps.insert(
                    k,
                    json!({"median_ms": med, "min_ms": min, "max_ms": max, "samples": v}),
                );
            }
            doc["drivers"][p.name()] = json!({"steps": steps, "peer": true});
        }
        Ok(())
    })();
    drop(registry);
    let drivers: Vec<String> = drivers
        .into_iter()
        .chain(peers.iter().map(|p| p.name().to_string()))
        .collect();
    let _ = fs.destroy();
    let _ = std::fs::remove_dir_all(&work);
    result?;
    // The table.
    let mut head = vec!["step".to_string()];
    head.extend(drivers.iter().cloned());
    let mut t = crate::output::table(&head.iter().map(String::as_str).collect::<Vec<_>>());
    for (s, _) in STEPS {
        let mut row = vec![s.to_string()];
        for d in &drivers {
            let c = &doc["drivers"][d]["steps"][s];
            row.push(match c["median_ms"].as_f64() {
                Some(m) => format!(
                    "{m:.1} ms ({:.1}–{:.1})",
                    c["min_ms"].as_f64().unwrap_or(0.0),
                    c["max_ms"].as_f64().unwrap_or(0.0)
                ),
                None => "-".into(),
            });
        }
        t.add_row(row);
    }
    let mut row = vec!["disk".to_string()];
    for d in &drivers {
        row.push(match doc["drivers"][d]["disk_bytes"].as_u64() {
            Some(b) => crate::output::human_size(b),
            None => "-".into(),
        });
    }
    t.add_row(row);
    println!(
        "{} run(s) per driver on a fresh {fstype}; median (min–max):",
        a.runs
    );
    crate::output::print_table(&t);
    for d in &drivers {
        if let Some(m) = doc["drivers"][d]["steps"]["port"]["median_ms"].as_f64() {
            println!(
                "published port ({d}): {:.2} GB/s",
                (a.port_mb << 20) as f64 / (m / 1000.0) / 1e9
            );
        }
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_vec_pretty(&doc)?)?;
    }
    if let Some(p) = &a.html {
        std::fs::write(p, html(&doc, &drivers))?;
    }
    Ok(0)
}

fn tempfile_dir(base: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(base)?;
    let d = base.join(format!("strata-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d)?;
    Ok(d)
}
