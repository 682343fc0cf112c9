//! Every failure a front end must tell apart comes back with its own kind: what the CLI
//! turns into messages and the daemon into HTTP statuses (404, 409, 400).

use engine::containers::CreateOptions;
use engine::{Config, Engine, ErrorKind, FileConfig, Flags};
use std::path::Path;

fn engine(root: &Path) -> Engine {
    let flags = Flags {
        data_root: Some(root.to_path_buf()),
        storage_driver: Some("vfs".into()),
        storage_opts: Vec::new(),
    };
    Engine::new(Config::merge(&flags, &FileConfig::default()).unwrap())
}

fn create(e: &Engine, image: &str, name: &str) -> engine::Result<String> {
    e.create_container(&CreateOptions {
        image: image.into(),
        name: Some(name.into()),
        network: "none".into(),
        ..Default::default()
    })
    .map(|c| c.id)
}

#[test]
fn each_failure_has_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir.path().join("root"));
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/busybox-wh.docker.tar");
    e.load(&fixture, None).unwrap();

    let kind = |r: engine::Result<String>| r.err().map(|e| e.kind());
    assert_eq!(
        kind(create(&e, "no-such-image", "a")),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        e.container("nobody").err().map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        e.volume("none").err().map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );

    // Not a hex digit: the ambiguous-prefix check below must not meet it as a name.
    let id = create(&e, "busybox-wh:1", "x").unwrap();
    assert_eq!(
        kind(create(&e, "busybox-wh:1", "x")),
        Some(ErrorKind::Conflict)
    );
    assert_eq!(
        e.remove_image("busybox-wh:1", false)
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::Conflict),
        "an image a container uses"
    );
    assert_eq!(
        e.kill("x", rustix::process::Signal::TERM)
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::Conflict),
        "a container that is not running"
    );

    assert_eq!(
        kind(create(&e, "busybox-wh:1", "-bad")),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(
        e.tag("busybox-wh:1", "Upper:case").err().map(|e| e.kind()),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(
        engine::containers::parse_signal("NOPE")
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::InvalidArgument)
    );

    // Two containers whose ids share a first digit make that digit ambiguous.
    let mut ids = vec![id];
    let mut n = 0;
    let prefix = loop {
        n += 1;
        let next = create(&e, "busybox-wh:1", &format!("c{n}")).unwrap();
        if let Some(p) = ids.iter().find(|i| i[..1] == next[..1]) {
            break p[..1].to_string();
        }
        ids.push(next);
    };
    assert_eq!(
        e.container(&prefix).err().map(|e| e.kind()),
        Some(ErrorKind::Ambiguous)
    );

    assert_eq!(
        engine::cp::CopySpec::parse("a:/x", "b:/y")
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::Unsupported)
    );
}
