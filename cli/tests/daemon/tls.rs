//! TCP served with TLS and client verification only.

use super::*;

#[test]
fn tcp_is_served_with_tls_client_verification_only() {
    let s = Strata::with_driver("overlay2");
    let client = docker_client();
    let dir = s.dir.path();
    common::tls::make_certs(dir);
    // Plain TCP on a non-loopback address is refused.
    let o = s.run(&["daemon", "-H", "tcp://0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tlsverify"));

    let port = common::free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let p = |n: &str| dir.join(n).to_string_lossy().to_string();
    let mut daemon = s
        .cmd(&[
            "daemon",
            "-H",
            &host,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("server.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let docker = |cert: &str, key: &str| {
        Command::new(&client)
            .env("DOCKER_CONFIG", dir)
            .args([
                "--tlsverify",
                "--tlscacert",
                &p("ca.pem"),
                "--tlscert",
                &p(cert),
                "--tlskey",
                &p(key),
                "-H",
                &host,
            ])
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .output()
            .unwrap()
    };
    let ok = docker("cert.pem", "key.pem");
    let refused = docker("mcert.pem", "mkey.pem");
    // Hijacked streams over TLS carry stdin both for attach (run -i) and exec -i.
    s.load("images/busybox-wh.docker.tar");
    let dk = Docker {
        global: common::tls::client_args(dir),
        ..Docker::at(&host)
    };
    let piped = dk.ok_input(
        &["run", "-i", "--rm", "busybox-wh:1", BB, "cat"],
        b"over tls\n",
    );
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "tls-exec",
        "busybox-wh:1",
        BB,
        "sleep",
        "60",
    ]);
    let exec = dk.ok_input(
        &["exec", "-i", "tls-exec", BB, "tr", "a-z", "A-Z"],
        b"exec input\n",
    );
    dk.ok(&["rm", "-f", "tls-exec"]);
    let plain = Command::new(&client)
        .env("DOCKER_CONFIG", dir)
        .args(["-H", &host, "version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        daemon::API_VERSION
    );
    assert!(
        !refused.status.success(),
        "a client certificate from another CA got in"
    );
    assert!(!plain.status.success(), "a plain HTTP client got in");
    assert_eq!(piped, "over tls\n");
    assert_eq!(exec, "EXEC INPUT\n");
}
