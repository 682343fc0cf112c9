//! Test certificates for `--tlsverify`: a CA, a server certificate for 127.0.0.1 and a
//! client certificate from it, and a second CA with a client certificate of its own.

use std::path::Path;
use std::process::Command;

/// Writes into `dir`: `ca.pem`, `server.pem`/`server-key.pem`, `cert.pem`/`key.pem`
/// (a client of the CA) and `mcert.pem`/`mkey.pem` (a client of another CA).
pub fn make_certs(dir: &Path) {
    let openssl = super::require_tool("openssl");
    let run = |args: &str| {
        let o = Command::new(&openssl)
            .args(args.split_whitespace())
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    run("req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1 -subj /CN=strata-test-ca");
    run("req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=localhost");
    run("x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server.pem -days 1 -extfile server.ext");
    run("req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj /CN=client");
    run("x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 1 -extfile client.ext");
    // A CA of someone else's, and a client certificate from it.
    run("req -x509 -newkey rsa:2048 -nodes -keyout other-key.pem -out other.pem -days 1 -subj /CN=other");
    run("req -newkey rsa:2048 -nodes -keyout mkey.pem -out m.csr -subj /CN=mallory");
    run("x509 -req -in m.csr -CA other.pem -CAkey other-key.pem -CAcreateserial -out mcert.pem -days 1 -extfile client.ext");
}

/// `--tlsverify` with the CA of [`make_certs`] and the certificate and key `cert`, `key`.
fn verify_args(dir: &Path, cert: &str, key: &str) -> Vec<String> {
    let p = |n: &str| dir.join(n).to_string_lossy().to_string();
    vec![
        "--tlsverify".into(),
        "--tlscacert".into(),
        p("ca.pem"),
        "--tlscert".into(),
        p(cert),
        "--tlskey".into(),
        p(key),
    ]
}

/// The daemon arguments that serve TLS with the certificates of [`make_certs`].
pub fn daemon_args(dir: &Path) -> Vec<String> {
    verify_args(dir, "server.pem", "server-key.pem")
}

/// The docker client arguments for the client certificate of [`make_certs`].
pub fn client_args(dir: &Path) -> Vec<String> {
    verify_args(dir, "cert.pem", "key.pem")
}
