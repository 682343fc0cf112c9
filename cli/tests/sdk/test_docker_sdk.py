"""The Python `docker` SDK (7.x) against `strata daemon`: high- and low-level APIs.

Run by cli/tests/daemon_sdk.rs with STRATA_HOST (the daemon's socket URL) and
STRATA_FIXTURE (an image archive holding busybox-wh:1).
"""
import io
import os
import tarfile
import tempfile
import time

import docker
import pytest

BB = "/bin/busybox"


@pytest.fixture(scope="module")
def client():
    c = docker.DockerClient(base_url=os.environ["STRATA_HOST"], version="auto")
    with open(os.environ["STRATA_FIXTURE"], "rb") as f:
        images = c.images.load(f.read())
    assert any("busybox-wh:1" in i.tags for i in images)
    return c


def test_version_and_info(client):
    v = client.version()
    assert v["ApiVersion"] == os.environ["STRATA_API_VERSION"]
    assert client.info()["Driver"] == "overlay2"
    assert client.ping()


def test_run_with_options(client, tmp_path):
    (tmp_path / "f").write_text("from the host")
    os.chmod(tmp_path, 0o755)  # read by uid 1000 in the container
    out = client.containers.run(
        "busybox-wh:1",
        [BB, "sh", "-c", "echo $FOO; pwd; id -u; hostname; cat /bind/f; echo; ls /data"],
        environment={"FOO": "bar"},
        working_dir="/tmp",
        user="1000",
        hostname="sdkbox",
        labels={"team": "storage"},
        volumes={"sdkvol": {"bind": "/data", "mode": "rw"},
                 str(tmp_path): {"bind": "/bind", "mode": "ro"}},
        mem_limit="64m",
        pids_limit=100,
        nano_cpus=500_000_000,
        remove=True,
    )
    # The new volume got the image's /data (dockerd's copy-up).
    assert out.decode().split("\n")[:7] == ["bar", "/tmp", "1000", "sdkbox", "from the host", "keep", "replace"]


def test_exit_status_and_stderr(client):
    with pytest.raises(docker.errors.ContainerError) as e:
        client.containers.run("busybox-wh:1", [BB, "sh", "-c", "echo oops >&2; exit 3"], remove=True)
    assert e.value.exit_status == 3
    assert b"oops" in e.value.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.run("no-such-image:1", ["true"])


def test_detached_logs_exec_archive_stop(client):
    c = client.containers.run(
        "busybox-wh:1",
        [BB, "sh", "-c", "echo ready; while true; do sleep 0.1; done"],
        detach=True,
        name="sdk-web",
        labels={"role": "web"},
    )
    try:
        for _ in range(100):
            if b"ready" in c.logs():
                break
        assert c.logs() == b"ready\n"
        c.reload()
        assert c.status == "running"
        assert c.labels == {"role": "web"}
        assert [x.name for x in client.containers.list(filters={"label": "role=web"})] == ["sdk-web"]
        r = c.exec_run([BB, "sh", "-c", "echo $X; id -u; pwd"], environment={"X": "y"}, user="1000", workdir="/tmp")
        assert r.exit_code == 0
        assert r.output == b"y\n1000\n/tmp\n"
        assert c.exec_run([BB, "sh", "-c", "exit 5"]).exit_code == 5
        out, err = c.exec_run([BB, "sh", "-c", "echo a; echo b >&2"], demux=True).output
        assert (out, err) == (b"a\n", b"b\n")
        # put_archive / get_archive (docker cp).
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = b"archived"
            info = tarfile.TarInfo("note.txt")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        assert c.put_archive("/tmp", buf.getvalue())
        bits, stat = c.get_archive("/tmp/note.txt")
        assert stat["name"] == "note.txt" and stat["size"] == 8
        raw = b"".join(bits)
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            assert t.extractfile("note.txt").read() == b"archived"
        # The log stream, followed while the container runs.
        stream = c.logs(stream=True, follow=True)
        assert next(stream) == b"ready\n"
        c.stop(timeout=1)
        assert c.wait()["StatusCode"] == 137
        c.reload()
        assert c.status == "exited"
    finally:
        c.remove(force=True)


def test_attach_stream(client):
    c = client.containers.create("busybox-wh:1", [BB, "sh", "-c", "sleep 0.3; echo one; echo two"])
    try:
        s = c.attach(stream=True, logs=True, stdout=True, stderr=True)
        c.start()
        got = b"".join(s)
        assert got == b"one\ntwo\n"
        assert c.wait()["StatusCode"] == 0
    finally:
        c.remove()


def test_images_tag_save_remove(client):
    img = client.images.get("busybox-wh:1")
    assert img.tag("sdk/copy", "v1")
    assert "sdk/copy:v1" in client.images.get("sdk/copy:v1").tags
    data = b"".join(client.images.get("sdk/copy:v1").save(named=True))
    assert len(data) > 1000
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert "manifest.json" in t.getnames()
    client.images.remove("sdk/copy:v1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("sdk/copy:v1")
    low = docker.APIClient(base_url=os.environ["STRATA_HOST"], version="auto")
    assert any("busybox-wh:1" in (i["RepoTags"] or []) for i in low.images())
    assert low.inspect_image("busybox-wh:1")["Id"].startswith("sha256:")


def test_volumes(client):
    v = client.volumes.create("sdk-v2")
    assert v.name == "sdk-v2"
    assert "sdk-v2" in [x.name for x in client.volumes.list()]
    assert client.volumes.get("sdk-v2").attrs["Mountpoint"]
    v.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("sdk-v2")
    client.volumes.prune()


def test_run_with_more_options(client):
    out = client.containers.run(
        "busybox-wh:1",
        [BB, "sh", "-c", "grep -w db /etc/hosts; grep nameserver /etc/resolv.conf; grep -c ' /run tmpfs' /proc/mounts"],
        extra_hosts={"db": "10.1.2.3"},
        dns=["10.0.0.53"],
        tmpfs={"/run": "size=1m"},
        read_only=True,
        cap_drop=["ALL"],
        network_mode="none",
        remove=True,
    )
    assert out == b"10.1.2.3\tdb\nnameserver 10.0.0.53\n1\n"
    c = client.containers.run(
        "busybox-wh:1",
        [BB, "sh", "-c", "trap 'exit 12' USR1; while true; do sleep 0.05; done"],
        detach=True,
        stop_signal="SIGUSR1",
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    try:
        c.reload()
        assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert c.attrs["Config"]["StopSignal"] == "SIGUSR1"
        stats = c.stats(stream=False)
        assert stats["pids_stats"]["current"] >= 1
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        c.rename("sdk-renamed")
        c.reload()
        assert c.name == "sdk-renamed"
        c.stop(timeout=2)
        assert c.wait()["StatusCode"] == 12
    finally:
        c.remove(force=True)


def test_exec_with_stdin_socket(client):
    c = client.containers.run("busybox-wh:1", [BB, "sleep", "30"], detach=True)
    try:
        low = docker.APIClient(base_url=os.environ["STRATA_HOST"], version="auto")
        ex = low.exec_create(c.id, [BB, "sh", "-c", "cat; echo end"], stdin=True)
        sock = low.exec_start(ex["Id"], socket=True)
        raw = sock._sock
        raw.sendall(b"piped\n")
        raw.shutdown(1)
        got = b""
        while True:
            d = raw.recv(65536)
            if not d:
                break
            got += d
        # Multiplexed frames: 8-byte headers before each payload.
        payload = b""
        while got:
            n = int.from_bytes(got[4:8], "big")
            payload += got[8:8 + n]
            got = got[8 + n:]
        assert payload == b"piped\nend\n"
        assert low.exec_inspect(ex["Id"])["ExitCode"] == 0
    finally:
        c.remove(force=True)


def read_until(raw, want, limit=200):
    """Reads a hijacked socket until `want` appears (or it closes); returns all read."""
    got = b""
    raw.settimeout(10)
    for _ in range(limit):
        if want in got:
            break
        d = raw.recv(65536)
        if not d:
            break
        got += d
    return got


def test_exec_terminal_and_resize(client):
    c = client.containers.run("busybox-wh:1", [BB, "sleep", "30"], detach=True)
    try:
        # A terminal from the container's own devpts.
        code, out = c.exec_run([BB, "tty"], tty=True)
        assert code == 0 and out.strip().startswith(b"/dev/pts/"), out
        # Its size follows exec_resize (the command sees SIGWINCH's new size).
        low = docker.APIClient(base_url=os.environ["STRATA_HOST"], version="auto")
        ex = low.exec_create(c.id, [BB, "sh", "-c", "read x; stty size; exit 4"], stdin=True, tty=True)
        sock = low.exec_start(ex["Id"], socket=True, tty=True)
        raw = sock._sock
        low.exec_resize(ex["Id"], height=33, width=101)
        raw.sendall(b"go\n")
        got = read_until(raw, b"33 101")
        assert b"33 101" in got, got
        for _ in range(100):
            if low.exec_inspect(ex["Id"])["ExitCode"] is not None:
                break
            time.sleep(0.05)
        assert low.exec_inspect(ex["Id"])["ExitCode"] == 4
    finally:
        c.remove(force=True)


def test_container_resize_and_detach_keys(client):
    c = client.containers.run(
        "busybox-wh:1",
        [BB, "sh", "-c", "while read line; do echo got $line; stty size; done"],
        detach=True, tty=True, stdin_open=True,
    )
    try:
        c.resize(height=40, width=120)
        low = docker.APIClient(base_url=os.environ["STRATA_HOST"], version="auto")
        sock = low.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-x,y"})
        raw = sock._sock
        raw.sendall(b"one\n")
        got = read_until(raw, b"40 120")
        assert b"got one" in got and b"40 120" in got, got
        # A near miss (ctrl-x then something else) goes through; the full sequence
        # ends the attach and leaves the container running.
        raw.sendall(b"\x18z\n")
        assert b"got" in read_until(raw, b"got \x18z")
        raw.sendall(b"\x18y")
        rest = read_until(raw, b"never")
        assert b"never" not in rest
        c.reload()
        assert c.status == "running"
        # A second attach still reaches it.
        sock2 = low.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
        sock2._sock.sendall(b"two\n")
        assert b"got two" in read_until(sock2._sock, b"got two")
        sock2._sock.close()
        # Bad detach keys are a 400.
        with pytest.raises(docker.errors.APIError) as e:
            low.attach_socket(c.id, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-1"})
        assert e.value.status_code == 400
    finally:
        c.remove(force=True)


def test_networks(client):
    """networks.create, containers.run(network=...), networking_config, connect,
    ports, and removal refused while in use."""
    net = client.networks.create("sdknet", driver="bridge", labels={"app": "sdk"},
                                 ipam=docker.types.IPAMConfig(pool_configs=[
                                     docker.types.IPAMPool(subnet="10.201.0.0/24")]))
    other = client.networks.create("sdkother")
    try:
        assert client.networks.get("sdknet").attrs["IPAM"]["Config"][0]["Subnet"] == "10.201.0.0/24"
        assert [n.name for n in client.networks.list(names=["sdknet"])] == ["sdknet"]
        web = client.containers.run(
            "busybox-wh:1", [BB, "httpd", "-f", "-p", "80", "-h", "/etc"],
            name="sdkweb", network="sdknet", detach=True,
            ports={"80/tcp": ("127.0.0.1", None)})
        web.reload()
        settings = web.attrs["NetworkSettings"]
        assert settings["Networks"]["sdknet"]["IPAddress"] == "10.201.0.2"
        assert settings["Networks"]["sdknet"]["Gateway"] == "10.201.0.1"
        assert settings["Networks"]["sdknet"]["MacAddress"] == "02:42:0a:c9:00:02"
        host_port = int(web.ports["80/tcp"][0]["HostPort"])
        import urllib.request
        for _ in range(50):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{host_port}/passwd", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body.startswith(b"root:x:0:0")
        # networking_config: a second server known on the network by an alias.
        cfg = client.api.create_networking_config({
            "sdknet": client.api.create_endpoint_config(aliases=["frontdoor"])})
        c = client.api.create_container(
            "busybox-wh:1", [BB, "httpd", "-f", "-p", "80", "-h", "/etc"], name="sdkalias",
            host_config=client.api.create_host_config(network_mode="sdknet"),
            networking_config=cfg)
        client.api.start(c)
        eps = client.api.inspect_container(c)["NetworkSettings"]["Networks"]["sdknet"]
        assert eps["Aliases"] == ["frontdoor"]
        assert eps["IPAddress"] == "10.201.0.3"
        out = client.containers.run(
            "busybox-wh:1", [BB, "sh", "-c", "wget -qO- http://sdkweb/passwd | head -1"],
            network="sdknet", remove=True)
        assert out.startswith(b"root:x:0:0")
        # Not reachable from another network; reachable once connected to it.
        probe = [BB, "sh", "-c", "nc -w 2 sdkweb 80 </dev/null; echo $?"]
        assert client.containers.run("busybox-wh:1", probe, network="sdkother", remove=True).strip() == b"1"
        other.connect(web, aliases=["web2"])
        assert client.containers.run("busybox-wh:1", probe, network="sdkother", remove=True).strip() == b"0"
        other.disconnect(web)
        # In use: refused.
        with pytest.raises(docker.errors.APIError):
            net.remove()
        web.remove(force=True)
    finally:
        for name in ["sdkweb", "sdkalias"]:
            try:
                client.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
        net.remove()
        other.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("sdknet")
    assert "bridge" in [n.name for n in client.networks.list()]
