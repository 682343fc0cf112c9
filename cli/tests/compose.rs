//! Docker Compose (Debian's `docker-compose` 1.29) against `strata daemon`: a project with
//! a build, two networks (one internal), an alias, a published port, a named volume
//! shared by two services and `depends_on: service_healthy`, through up, ps, logs, exec,
//! run --rm, restart, up --scale, stop and down -v; a second `up` changes nothing.

mod common;

use common::daemon::Daemon;
use common::Strata;
use std::path::Path;
use std::process::{Command, Output};

const PROJECT: &str = r#"version: "2.4"
services:
  web:
    build: ./web
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    networks: [front, back]
    depends_on:
      db:
        condition: service_healthy
    volumes: [shared:/data]
  db:
    image: busybox-wh:1
    command: ["/bin/busybox", "sh", "-c", "sleep 1; echo up > /data/db; exec /bin/busybox httpd -f -p 5432 -h /data"]
    healthcheck:
      test: ["CMD-SHELL", "test -f /data/db"]
      interval: 500ms
      retries: 5
    networks:
      back:
        aliases: [database]
    volumes: [shared:/data]
  worker:
    image: busybox-wh:1
    command: ["/bin/busybox", "sh", "-c", "while true; do echo tick; sleep 1; done"]
    networks: [back]
networks:
  front: {}
  back:
    internal: true
volumes:
  shared: {}
"#;

struct Compose<'a> {
    dir: &'a Path,
    host: String,
    port: u16,
}

impl Compose<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(common::require_tool("docker-compose"))
            .current_dir(self.dir)
            .env("DOCKER_HOST", &self.host)
            .env("WEB_PORT", self.port.to_string())
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
            .args(["-p", "cp"])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "docker-compose {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // Compose reports progress on stderr.
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
}

#[test]
fn a_compose_project_runs_through_its_whole_life() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), PROJECT).unwrap();
    std::fs::create_dir(dir.path().join("web")).unwrap();
    std::fs::write(
        dir.path().join("web/Dockerfile"),
        "FROM busybox-wh:1\nCOPY index.html /www/index.html\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("web/index.html"), "hello from web\n").unwrap();
    let c = Compose {
        dir: dir.path(),
        host: format!("unix://{}", d.sock.display()),
        port: common::free_port(),
    };

    let up = c.ok(&["up", "-d"]);
    assert!(up.contains("Successfully tagged cp_web:latest"), "{up}");
    // web started only once db was healthy.
    let db: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "cp_db_1"])).unwrap();
    let db = if db.is_array() { db[0].clone() } else { db };
    assert_eq!(db["State"]["Health"]["Status"], "healthy", "{db}");
    let ps = c.ok(&["ps"]);
    for (name, state) in [
        ("cp_db_1", "Up (healthy)"),
        ("cp_web_1", "Up"),
        ("cp_worker_1", "Up"),
    ] {
        assert!(
            ps.lines().any(|l| l.starts_with(name) && l.contains(state)),
            "{name} {state}: {ps}"
        );
    }
    assert!(
        ps.contains(&format!("127.0.0.1:{}->8080/tcp", c.port)),
        "{ps}"
    );
    let page = common::http_get(c.port, "/");
    assert!(page.ends_with("\r\n\r\nhello from web\n"), "{page}");
    // The alias on the internal network, and the shared volume.
    let got = c.ok(&[
        "exec",
        "-T",
        "web",
        "/bin/busybox",
        "wget",
        "-qO-",
        "http://database:5432/db",
    ]);
    assert!(got.contains("up"), "{got}");
    let shared = c.ok(&["exec", "-T", "web", "/bin/busybox", "cat", "/data/db"]);
    assert!(shared.contains("up"), "{shared}");
    // The internal network has no way out: worker reaches no address off it.
    let o = c.run(&[
        "exec",
        "-T",
        "worker",
        "/bin/busybox",
        "wget",
        "-T",
        "2",
        "-qO-",
        "http://1.1.1.1/",
    ]);
    assert!(!o.status.success(), "the internal network reached out");
    let logs = c.ok(&["logs", "--tail", "2", "worker"]);
    assert!(logs.contains("tick"), "{logs}");
    let ran = c.ok(&["run", "--rm", "worker", "/bin/busybox", "echo", "ran"]);
    assert!(ran.contains("ran"), "{ran}");

    // A second up changes nothing.
    let again = c.ok(&["up", "-d"]);
    for svc in ["cp_db_1", "cp_web_1", "cp_worker_1"] {
        assert!(again.contains(&format!("{svc} is up-to-date")), "{again}");
    }
    assert!(!again.contains("Recreat"), "{again}");

    let restarted = c.ok(&["restart", "-t", "1"]);
    assert!(restarted.contains("Restarting cp_web_1"), "{restarted}");
    assert!(common::http_get(c.port, "/").ends_with("hello from web\n"));
    c.ok(&["up", "-d", "--scale", "worker=2"]);
    let ids = c.ok(&["ps", "-q"]);
    assert_eq!(
        ids.lines().filter(|l| !l.trim().is_empty()).count(),
        4,
        "{ids}"
    );
    c.ok(&["stop", "-t", "1"]);
    let ps = c.ok(&["ps"]);
    assert_eq!(ps.matches("Exit ").count(), 4, "{ps}");
    let down = c.ok(&["down", "-v"]);
    assert!(down.contains("Removing volume cp_shared"), "{down}");
    assert!(s.ok(&["ps", "-aq"]).trim().is_empty());
    let nets = s.ok(&["network", "ls"]);
    assert!(!nets.contains("cp_"), "{nets}");
    assert!(!s.ok(&["volume", "ls"]).contains("cp_shared"));
    s.assert_fsck_ok();
}
