//! Bad requests: Docker's statuses and messages.

use super::*;

#[test]
fn bad_requests_get_docker_statuses_and_messages() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    let msg = |b: &str| -> String {
        serde_json::from_str::<serde_json::Value>(b)
            .map(|v| v["message"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let (st, body) = d.request("GET", "/v1.41/_ping", b"");
    assert_eq!((st, body.as_str()), (200, "OK"));
    let (st, body) = d.request("GET", "/v1.41/containers/nope/json", b"");
    assert_eq!(st, 404);
    assert!(msg(&body).contains("No such container"), "{body}");
    let (st, body) = d.request("GET", "/images/nope:1/json", b"");
    assert_eq!(st, 404, "{body}");
    let (st, body) = d.request("POST", "/containers/create", b"{not json");
    assert_eq!(st, 400);
    assert!(msg(&body).contains("invalid JSON"), "{body}");
    let (st, _) = d.request("POST", "/containers/create", br#"{"Image":"no-such:1"}"#);
    assert_eq!(st, 404);
    let (st, _) = d.request(
        "POST",
        "/containers/create?name=x",
        br#"{"Image":"busybox-wh:1"}"#,
    );
    assert_eq!(st, 201);
    let (st, body) = d.request(
        "POST",
        "/containers/create?name=x",
        br#"{"Image":"busybox-wh:1"}"#,
    );
    assert_eq!(st, 409, "{body}");
    let (st, _) = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox-wh:1","HostConfig":{"Binds":["/no/such/dir:/x"]}}"#,
    );
    assert_eq!(st, 400);
    let big = vec![b' '; (17 << 20) as usize];
    let (st, _) = d.request("POST", "/containers/create", &big);
    assert_eq!(st, 413);
    let (st, _) = d.request("GET", "/v1.12/version", b"");
    assert_eq!(st, 400, "an API version older than the minimum");
    let (st, _) = d.request("GET", "/no/such/path", b"");
    assert_eq!(st, 404);
    let (st, _) = d.request("POST", "/networks/create", b"{}");
    assert_eq!(st, 400, "a network needs a name");
    let (st, _) = d.request("POST", "/swarm/init", b"{}");
    assert_eq!(st, 501);
    // A client that disconnects mid-stream leaves the container alone.
    let (st, _) = d.request("POST", "/containers/x/start", b"");
    assert_eq!(st, 204);
    {
        let mut c = UnixStream::connect(&d.sock).unwrap();
        c.write_all(b"GET /containers/x/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: d\r\n\r\n")
            .unwrap();
    }
    let (st, _) = d.request("GET", "/containers/x/json", b"");
    assert_eq!(st, 200);
    // The daemon still answers.
    assert_eq!(d.request("GET", "/_ping", b"").0, 200);
}
