//! `strata build`: real Dockerfiles, compared with what `docker build` (the classic
//! builder, Debian's docker.io) makes of the same context — every layer's file tree and
//! the runtime config — plus the cache, bad input, and layers that are the same on every
//! driver with SOURCE_DATE_EPOCH.

mod common;

use common::{drivers_here, fixture, require_tool, sh, Strata};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One entry of a layer tar, without its time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    content: String,
    link: String,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// Every layer's entries (path -> entry) and the image config of a docker-archive.
fn read_archive(path: &Path) -> (Vec<BTreeMap<String, Entry>>, Value) {
    let dir = tempfile::tempdir().unwrap();
    sh(Command::new("tar")
        .arg("-xf")
        .arg(path)
        .arg("-C")
        .arg(dir.path()));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let m = &manifest[0];
    let config: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(m["Config"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut layers = Vec::new();
    for l in m["Layers"].as_array().unwrap() {
        let f = std::fs::File::open(dir.path().join(l.as_str().unwrap())).unwrap();
        let mut ar = tar::Archive::new(f);
        let mut entries = BTreeMap::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let h = e.header().clone();
            let mut xattrs = BTreeMap::new();
            if let Ok(Some(pax)) = e.pax_extensions() {
                for x in pax.flatten() {
                    if let Some(k) = x.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                        xattrs.insert(k.to_string(), x.value_bytes().to_vec());
                    }
                }
            }
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            // dockerd writes the second whiteout of a layer with the first one's name as
            // a link name (overlay's whiteouts share one inode); a marker has no target.
            let is_whiteout = path
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(".wh."));
            entries.insert(
                path,
                Entry {
                    kind: h.entry_type().as_byte() as char,
                    mode: h.mode().unwrap() & 0o7777,
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    content: hex::encode(Sha256::digest(&data)),
                    link: h
                        .link_name()
                        .unwrap()
                        .filter(|_| !is_whiteout)
                        .map(|l| l.to_string_lossy().to_string())
                        .unwrap_or_default(),
                    xattrs,
                },
            );
        }
        layers.push(entries);
    }
    (layers, config)
}

/// The runtime config fields both builders must agree on; empty and missing are equal.
fn config_fields(cfg: &Value) -> BTreeMap<&'static str, Value> {
    let c = &cfg["config"];
    let mut out = BTreeMap::new();
    for k in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
        "Healthcheck",
        "OnBuild",
        "Shell",
    ] {
        let v = c.get(k).cloned().unwrap_or(Value::Null);
        let empty = match &v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        out.insert(k, if empty { Value::Null } else { v });
    }
    out
}

/// Which history entries made a layer, as a list of the instructions' kinds.
fn empty_layers(cfg: &Value) -> Vec<bool> {
    cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["empty_layer"].as_bool().unwrap_or(false))
        .collect()
}

fn write(dir: &Path, rel: &str, data: &str, mode: u32) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A context that exercises most of the builder: globs, directories, archives, a
/// .dockerignore with an exception, a script with its own mode.
fn rich_context(dir: &Path) {
    write(dir, "a.txt", "alpha\n", 0o644);
    write(dir, "b.txt", "bravo\n", 0o600);
    write(dir, "notes.md", "ignored\n", 0o644);
    write(dir, "README.md", "kept by an exception\n", 0o644);
    write(dir, "secret/key", "never sent\n", 0o600);
    write(dir, "src/main.sh", "#!/bin/sh\necho main\n", 0o755);
    write(dir, "src/lib/util.sh", "util() { :; }\n", 0o644);
    write(dir, "conf/app.conf", "port=8080\n", 0o640);
    write(
        dir,
        ".dockerignore",
        "*.md\n!README.md\nsecret/\n**/*.tmp\n",
        0o644,
    );
    write(dir, "src/junk.tmp", "ignored\n", 0o644);
    std::os::unix::fs::symlink("main.sh", dir.join("src/run")).unwrap();
    // A tar to ADD (plain and gzip): a directory, a file, a symlink, a hardlink.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_uid(12);
    h.set_gid(34);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    b.append_data(&mut h, "pkg/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_uid(12);
    h.set_gid(34);
    h.set_size(6);
    h.set_mtime(1_600_000_000);
    b.append_data(&mut h, "pkg/file", &b"hello\n"[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    b.append_link(&mut h, "pkg/link", "file").unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Link);
    h.set_mode(0o644);
    h.set_uid(12);
    h.set_gid(34);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    b.append_link(&mut h, "pkg/hard", "pkg/file").unwrap();
    let tar = b.into_inner().unwrap();
    std::fs::write(dir.join("archive.tar"), &tar).unwrap();
    std::fs::write(dir.join("archive2.tar"), &tar).unwrap();
    sh(Command::new("gzip").arg("-n").arg(dir.join("archive2.tar")));
    write(
        dir,
        "Dockerfile",
        r#"# a multi-stage build
ARG BASE=busybox-wh:1
FROM $BASE AS builder
ARG VERSION=1.0
ENV APP_HOME=/opt/app \
    MODE=prod
WORKDIR $APP_HOME
COPY *.txt ./
COPY src/ src/
COPY . /ctx/
ADD archive.tar /opt/unpacked/
ADD archive2.tar.gz /opt/unpacked-gz
RUN echo "version $VERSION $MODE" > version && ln -s version current && ln version version.hard && mkdir -p data && chmod 0750 data
COPY --chown=1000:1000 conf/ /etc/app/
USER 1000:1000
RUN id > /etc/app/id.txt
EXPOSE 8080 53/udp
VOLUME /data
LABEL org.example.version=$VERSION maintainer="some one"
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD wget -q -O- http://localhost:8080/ || exit 1
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /opt/app/version"]

FROM busybox-wh:1 AS final
COPY --from=builder /opt/app /srv/app
RUN rm -rf /srv/app/src && echo done > /srv/done && rm /etc/group
ENV PATH=/srv/app:$PATH
WORKDIR /srv
CMD ["sh"]
"#,
        0o644,
    );
}

fn docker() -> Option<PathBuf> {
    let d = require_tool("docker");
    let ok = Command::new(&d)
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "dockerd is not running: scripts/test.sh starts it (dockerd --iptables=false --ip6tables=false --bridge=none)"
    );
    Some(d)
}

/// Builds `ctx` with docker's classic builder as `tag`; returns its docker-archive.
fn docker_build(docker: &Path, ctx: &Path, tag: &str, out: &Path) -> PathBuf {
    sh(Command::new(docker)
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", tag])
        .arg(ctx));
    let arch = out.join(format!("{}.docker.tar", tag.replace([':', '/'], "_")));
    sh(Command::new(docker)
        .args(["save", "-o"])
        .arg(&arch)
        .arg(tag));
    arch
}

fn strata_build(s: &Strata, ctx: &Path, tag: &str) -> PathBuf {
    s.ok(&["build", "-t", tag, ctx.to_str().unwrap()]);
    let arch = s
        .dir
        .path()
        .join(format!("{}.tar", tag.replace([':', '/'], "_")));
    s.ok(&["save", "-o", arch.to_str().unwrap(), tag]);
    arch
}

/// Asserts two images have the same layers (entry by entry) and the same config.
fn assert_same_image(ours: &Path, theirs: &Path, what: &str) {
    let (ol, oc) = read_archive(ours);
    let (tl, tc) = read_archive(theirs);
    assert_eq!(
        empty_layers(&oc),
        empty_layers(&tc),
        "{what}: which steps made layers"
    );
    assert_eq!(ol.len(), tl.len(), "{what}: number of layers");
    for (n, (o, t)) in ol.iter().zip(&tl).enumerate() {
        for (p, e) in t {
            assert_eq!(
                o.get(p),
                Some(e),
                "{what}: layer {n}: {p} (docker has {e:?})"
            );
        }
        for p in o.keys() {
            assert!(
                t.contains_key(p),
                "{what}: layer {n}: {p} only in strata's layer"
            );
        }
    }
    assert_eq!(config_fields(&oc), config_fields(&tc), "{what}: config");
}

#[test]
fn builds_what_docker_build_builds() {
    let Some(docker) = docker() else { return };
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    sh(Command::new(&docker)
        .arg("load")
        .arg("-i")
        .arg(fixture("images/busybox-wh.docker.tar")));
    let ctx = tempfile::tempdir().unwrap();
    rich_context(ctx.path());
    let tag = "strata-build-test/rich:1";
    let ours = strata_build(&s, ctx.path(), tag);
    let theirs = docker_build(&docker, ctx.path(), tag, s.dir.path());
    assert_same_image(&ours, &theirs, "multi-stage build");

    // The builder stage alone (--target), with its USER, HEALTHCHECK, ENTRYPOINT...
    s.ok(&[
        "build",
        "--target",
        "builder",
        "-t",
        "strata-build-test/builder:1",
        ctx.path().to_str().unwrap(),
    ]);
    let arch = s.dir.path().join("builder.tar");
    s.ok(&[
        "save",
        "-o",
        arch.to_str().unwrap(),
        "strata-build-test/builder:1",
    ]);
    sh(Command::new(&docker)
        .env("DOCKER_BUILDKIT", "0")
        .args([
            "build",
            "-q",
            "--target",
            "builder",
            "-t",
            "strata-build-test/builder:1",
        ])
        .arg(ctx.path()));
    let theirs_b = s.dir.path().join("builder.docker.tar");
    sh(Command::new(&docker)
        .args(["save", "-o"])
        .arg(&theirs_b)
        .arg("strata-build-test/builder:1"));
    assert_same_image(&arch, &theirs_b, "--target builder");

    // ONBUILD: triggers stored in one image, run when another is built FROM it.
    let base = tempfile::tempdir().unwrap();
    write(base.path(), "a.txt", "from the child's context\n", 0o644);
    write(
        base.path(),
        "Dockerfile",
        "FROM busybox-wh:1\nONBUILD COPY a.txt /onbuild/a.txt\nONBUILD RUN echo triggered > /onbuild/ran\nCMD [\"sh\"]\n",
        0o644,
    );
    let ob = "strata-build-test/onbuild-base:1";
    let ours_base = strata_build(&s, base.path(), ob);
    let theirs_base = docker_build(&docker, base.path(), ob, s.dir.path());
    assert_same_image(&ours_base, &theirs_base, "ONBUILD base");
    let child = tempfile::tempdir().unwrap();
    write(child.path(), "a.txt", "child's a\n", 0o644);
    write(
        child.path(),
        "Dockerfile",
        &format!("FROM {ob}\nRUN cat /onbuild/a.txt /onbuild/ran > /seen\n"),
        0o644,
    );
    let oc = "strata-build-test/onbuild-child:1";
    let ours_child = strata_build(&s, child.path(), oc);
    let theirs_child = docker_build(&docker, child.path(), oc, s.dir.path());
    assert_same_image(&ours_child, &theirs_child, "ONBUILD child");
    let seen = s.ok(&["run", "--rm", oc, "cat", "/seen"]);
    assert_eq!(seen, "child's a\ntriggered\n");

    for t in [tag, "strata-build-test/builder:1", ob, oc] {
        let _ = Command::new(&docker).args(["rmi", "-f", t]).output();
    }
    s.assert_fsck_ok();
}

/// A store with busybox-wh loaded and a context of `files` and this Dockerfile.
fn setup(files: &[(&str, &str)], dockerfile: &str) -> (Strata, tempfile::TempDir) {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let ctx = tempfile::tempdir().unwrap();
    for (name, data) in files {
        write(ctx.path(), name, data, 0o644);
    }
    write(ctx.path(), "Dockerfile", dockerfile, 0o644);
    (s, ctx)
}

fn id_of(s: &Strata, image: &str) -> Value {
    let v: Value = serde_json::from_str(&s.ok(&["inspect", image])).unwrap();
    v[0]["Id"].clone()
}

fn steps_from_cache(out: &str) -> usize {
    out.matches("Using cache").count()
}

#[test]
fn cache_serves_an_unchanged_build_and_a_changed_source_rebuilds_from_its_step() {
    let (s, ctx) = setup(
        &[("a.txt", "one\n"), ("b.txt", "two\n")],
        "FROM busybox-wh:1\nENV A=1\nRUN echo first > /first\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy-of-a\nCOPY b.txt /b.txt\nCMD [\"cat\", \"/copy-of-a\"]\n",
    );
    let dir = ctx.path().to_str().unwrap();
    let first = s.ok(&["build", "-t", "cached:1", dir]);
    assert_eq!(steps_from_cache(&first), 0, "{first}");
    let id1 = id_of(&s, "cached:1");

    // The same again: every step but FROM from the cache, the same image.
    let second = s.ok(&["build", "-t", "cached:2", dir]);
    assert_eq!(steps_from_cache(&second), 6, "{second}");
    assert!(!second.contains("Running in"), "{second}");
    assert_eq!(id_of(&s, "cached:2"), id1);

    // A new mtime alone changes nothing.
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(ctx.path().join("a.txt"))
        .unwrap()
        .set_modified(now)
        .unwrap();
    assert_eq!(steps_from_cache(&s.ok(&["build", dir])), 6);

    // New content in a.txt: the steps before its COPY come from the cache, the rest run.
    write(ctx.path(), "a.txt", "uno\n", 0o644);
    let third = s.ok(&["build", "-t", "cached:3", dir]);
    assert_eq!(steps_from_cache(&third), 2, "{third}");
    assert_eq!(third.matches("Running in").count(), 3, "{third}");
    assert_eq!(s.ok(&["run", "--rm", "cached:3"]), "uno\n");
    assert_eq!(s.ok(&["run", "--rm", "cached:1"]), "one\n");

    // --no-cache runs everything; --label is one more step, its value kept as given.
    let fourth = s.ok(&[
        "build",
        "--no-cache",
        "--label",
        "note=two words $HOME \"q\"",
        "-t",
        "labelled:1",
        dir,
    ]);
    assert_eq!(steps_from_cache(&fourth), 0, "{fourth}");
    let v: Value = serde_json::from_str(&s.ok(&["inspect", "labelled:1"])).unwrap();
    assert_eq!(v[0]["Config"]["Labels"]["note"], "two words $HOME \"q\"");

    // history: one row per instruction, metadata steps as empty layers.
    let h = s.ok(&["history", "cached:3"]);
    assert!(h.contains("#(nop)  ENV A=1"), "{h}");
    assert!(h.contains("/bin/sh -c echo first > /first"), "{h}");
    assert!(h.contains("#(nop)  CMD [\"cat\" \"/copy-of-a\"]"), "{h}");
    // Intermediate images are not listed; -a shows them.
    let listed = s.ok(&["images", "-q"]).lines().count();
    let all = s.ok(&["images", "-a", "-q"]).lines().count();
    assert!(all > listed + 5, "{listed} listed, {all} with -a");
    s.assert_fsck_ok();
}

#[test]
fn bad_input_is_one_clear_error_and_leaves_nothing_behind() {
    let (s, ctx) = setup(
        &[("a.txt", "a\n")],
        "FROM busybox-wh:1\nRUN true\nFROBNICATE now\n",
    );
    let dir = ctx.path().to_str().unwrap();
    let df = |text: &str| write(ctx.path(), "Dockerfile", text, 0o644);

    let e = s.fails(&["build", "-t", "bad:1", dir], 125);
    assert!(e.contains("line 3") && e.contains("FROBNICATE"), "{e}");

    df("FROM busybox-wh:1\nCOPY missing.txt /x\n");
    let e = s.fails(&["build", "-t", "bad:1", dir], 125);
    assert!(e.contains("missing.txt") && e.contains("line 2"), "{e}");

    df("FROM busybox-wh:1\nCOPY a.txt /a\nRUN echo about to fail; exit 3\n");
    let o = s.run(&["build", "-t", "bad:1", dir]);
    assert_eq!(o.status.code(), Some(3), "the step's exit code");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stdout.contains("about to fail"),
        "its output is shown: {stdout}"
    );
    assert!(stderr.contains("returned a non-zero code: 3"), "{stderr}");

    df("FROM no-such-image:1\n");
    let e = s.fails(&["build", "-t", "bad:1", dir], 125);
    assert!(e.contains("no-such-image"), "{e}");

    df("FROM busybox-wh:1\nHEALTHCHECK --interval=soon CMD true\n");
    let e = s.fails(&["build", "-t", "bad:1", dir], 125);
    assert!(e.contains("--interval=soon"), "{e}");

    // Symlinks in the context resolve inside it: nothing of the host is copied.
    std::fs::write(ctx.path().join("hostname-here"), "context's own\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", ctx.path().join("evil")).unwrap();
    std::os::unix::fs::symlink("/", ctx.path().join("root-link")).unwrap();
    df("FROM busybox-wh:1\nCOPY evil /x\n");
    let e = s.fails(&["build", "-t", "bad:1", dir], 125);
    assert!(e.contains("evil") && e.contains("no such file"), "{e}");
    df("FROM busybox-wh:1\nCOPY root-link/etc/passwd /x\n");
    s.fails(&["build", "-t", "bad:1", dir], 125);
    df("FROM busybox-wh:1\nCOPY root-link/hostname-here /x\n");
    s.ok(&["build", "-t", "ok:1", dir]);
    assert_eq!(
        s.ok(&["run", "--rm", "ok:1", "cat", "/x"]),
        "context's own\n"
    );

    // Nothing was named, and no container of any step is left.
    let names = s.ok(&["images"]);
    assert!(!names.contains("bad"), "{names}");
    assert_eq!(s.ok(&["ps", "-a", "-q"]), "");
    s.assert_fsck_ok();
}

#[test]
fn layers_are_the_same_on_every_driver_with_source_date_epoch() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "a.txt", "a\n", 0o644);
    write(ctx.path(), "d/b.txt", "b\n", 0o600);
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox-wh:1\nWORKDIR /work\nCOPY . src/\nRUN mkdir out && echo hi > out/f && ln -s f out/l && ln out/f out/h && rm /etc/group && echo x >> /etc/passwd\nUSER 1000\n",
        0o644,
    );
    let mut seen: Vec<(String, Vec<Value>)> = Vec::new();
    for d in drivers_here() {
        let s = Strata::with_driver(d);
        s.load("images/busybox-wh.docker.tar");
        let o = s
            .cmd(&["build", "-t", "repro:1", ctx.path().to_str().unwrap()])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{d}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_str(&s.ok(&["inspect", "repro:1"])).unwrap();
        let layers = v[0]["RootFS"]["Layers"].as_array().unwrap().clone();
        assert_eq!(v[0]["Created"], "2023-11-14T22:13:20Z", "{d}");
        assert_eq!(
            s.ok(&["run", "--rm", "repro:1", "cat", "/work/out/l"]),
            "hi\n"
        );
        seen.push((d.to_string(), layers));
    }
    for (d, l) in &seen[1..] {
        assert_eq!(l, &seen[0].1, "{d} and {} give the same DiffIDs", seen[0].0);
    }
}

#[test]
fn a_killed_build_leaves_a_store_that_fsck_passes_and_builds_again() {
    use std::io::BufRead;
    let (s, ctx) = setup(
        &[("a.txt", "a\n")],
        "FROM busybox-wh:1\nCOPY a.txt /a\nRUN echo started; sleep 30\n",
    );
    let dir = ctx.path().to_str().unwrap().to_string();
    let mut child = s
        .cmd(&["build", "-t", "killed:1", &dir])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // Killed while the RUN runs, after the COPY step's image was made.
    for l in lines.by_ref() {
        if l.unwrap().contains("started") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!s.ok(&["images"]).contains("killed"), "nothing named");
    s.assert_fsck_ok();
    // What the killed build left (its step's container, as dockerd leaves one) goes with
    // rm -f; the build then runs again, its COPY step from the cache.
    for id in s.ok(&["ps", "-a", "-q"]).lines() {
        s.ok(&["rm", "-f", id]);
    }
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox-wh:1\nCOPY a.txt /a\nRUN echo finished > /b\n",
        0o644,
    );
    let out = s.ok(&["build", "-t", "killed:1", &dir]);
    assert_eq!(steps_from_cache(&out), 1, "{out}");
    assert_eq!(
        s.ok(&["run", "--rm", "killed:1", "cat", "/a", "/b"]),
        "a\nfinished\n"
    );
    s.assert_fsck_ok();
}

#[test]
fn escape_directive_continuations_and_variables_in_copy() {
    let (s, ctx) = setup(
        &[("a.txt", "a\n")],
        "# escape=`\nFROM busybox-wh:1\nARG DIR=/dest\nENV FILE=a.txt\nCOPY ${FILE} $DIR/\nRUN echo one `\n    two > /joined\nWORKDIR ${DIR:-/nowhere}\nCMD [\"cat\", \"a.txt\", \"/joined\"]\n",
    );
    s.ok(&["build", "-t", "esc:1", ctx.path().to_str().unwrap()]);
    assert_eq!(s.ok(&["run", "--rm", "esc:1"]), "a\none two\n");
    let v: Value = serde_json::from_str(&s.ok(&["inspect", "esc:1"])).unwrap();
    assert_eq!(v[0]["Config"]["WorkingDir"], "/dest");
}

#[test]
fn rmi_of_a_built_image_deletes_its_intermediate_images() {
    let (s, ctx) = setup(
        &[("a.txt", "a\n")],
        "FROM busybox-wh:1\nENV A=1\nCOPY a.txt /a\nRUN echo b > /b\nCMD [\"sh\"]\n",
    );
    let dir = ctx.path().to_str().unwrap();
    s.ok(&["build", "-t", "one:1", dir]);
    s.ok(&["tag", "one:1", "two:1"]);
    let before = s.ok(&["images", "-a", "-q"]).lines().count();
    assert_eq!(before, 5, "busybox and the build's four images");
    // Untagging one of two names deletes nothing.
    s.ok(&["rmi", "two:1"]);
    assert_eq!(s.ok(&["images", "-a", "-q"]).lines().count(), 5);
    // The last name: the image and the three intermediate ones below it go; the base stays.
    let out = s.ok(&["rmi", "one:1"]);
    assert_eq!(out.matches("Deleted:").count(), 4, "{out}");
    assert_eq!(s.ok(&["images", "-a", "-q"]).lines().count(), 1);
    assert!(s.ok(&["images"]).contains("busybox-wh"));
    s.assert_fsck_ok();
}

#[test]
fn a_base_without_path_gets_the_classic_builders_default_path() {
    let docker = docker();
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "a.txt", "a\n", 0o644);
    write(
        ctx.path(),
        "Dockerfile",
        "FROM scratch\nCOPY a.txt /a.txt\nENV X=1\n",
        0o644,
    );
    let want = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let mut ours = None;
    for d in drivers_here() {
        let s = Strata::with_driver(d);
        let arch = strata_build(&s, ctx.path(), "nopath:1");
        let v: Value = serde_json::from_str(&s.ok(&["inspect", "nopath:1"])).unwrap();
        assert_eq!(
            v[0]["Config"]["Env"],
            serde_json::json!([want, "X=1"]),
            "{d}"
        );
        if ours.is_none() {
            ours = Some((s, arch));
        }
    }
    // The same as `docker build` writes.
    if let (Some(docker), Some((s, arch))) = (docker, ours) {
        let theirs = docker_build(
            &docker,
            ctx.path(),
            "strata-build-test/nopath:1",
            s.dir.path(),
        );
        assert_same_image(&arch, &theirs, "FROM scratch");
    }
}
