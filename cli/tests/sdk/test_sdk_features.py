"""The Docker SDK's features that Docker's clients use, each through the SDK against
`strata daemon`: log drivers, volumes_from, links, group_add, init, namespace modes,
cpusets, shm, sysctls, masked and read-only paths, archives in volumes and binds, raw
terminal streams, attach without a stream, logs `until`, prune and list filters, volume
and network labels and options, image load's message stream, dockerd's error texts.

Run by cli/tests/daemon_sdk.rs with STRATA_HOST and STRATA_FIXTURE.
"""
import datetime
import io
import os
import socket
import tarfile
import time

import docker
import pytest

BB = "/bin/busybox"
IMG = "busybox-wh:1"


@pytest.fixture(scope="module")
def client():
    c = docker.DockerClient(base_url=os.environ["STRATA_HOST"], version="auto")
    with open(os.environ["STRATA_FIXTURE"], "rb") as f:
        c.images.load(f.read())
    return c


def run(client, cmd, **kw):
    return client.containers.run(IMG, [BB, "sh", "-c", cmd], remove=True, network_mode="none", **kw).decode()


def wait_exit(c):
    c.wait(timeout=30)
    c.reload()


def test_log_drivers(client):
    # local: rotated files compressed; logs reads across them, in order.
    script = "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done"
    for cfg in [docker.types.LogConfig(type="local", config={"max-size": "2k", "max-file": "3"}),
                docker.types.LogConfig(type="json-file", config={"max-size": "2k", "max-file": "3", "compress": "true"})]:
        c = client.containers.run(IMG, [BB, "sh", "-c", script], detach=True, network_mode="none", log_config=cfg)
        try:
            wait_exit(c)
            assert c.attrs["HostConfig"]["LogConfig"]["Type"] == cfg["Type"]
            assert c.attrs["HostConfig"]["LogConfig"]["Config"]["max-size"] == "2k"
            lines = c.logs().decode().splitlines()
            assert lines[-1] == "line 299"
            first = int(lines[0].split()[1])
            assert lines == [f"line {i}" for i in range(first, 300)]
            assert 0 < first < 299, "rotated (3 files of 2 KiB keep fewer than 300 lines)"
            assert c.logs(tail=5).decode().splitlines() == [f"line {i}" for i in range(295, 300)]
        finally:
            c.remove(force=True)
    # An unknown driver or option is refused at create.
    for bad in [docker.types.LogConfig(type="syslog"),
                docker.types.LogConfig(type="local", config={"mode": "non-blocking"})]:
        with pytest.raises(docker.errors.APIError) as e:
            client.containers.create(IMG, ["true"], log_config=bad)
        assert e.value.status_code == 400


def test_volumes_from_links_group_add_init(client):
    src = client.containers.run(IMG, [BB, "sleep", "60"], detach=True, name="sdk-src",
                                volumes={"sdk-shared": {"bind": "/shared", "mode": "rw"}})
    try:
        out = run(client, "echo hi > /shared/f && cat /shared/f", volumes_from=["sdk-src"])
        assert out == "hi\n"
        with pytest.raises(docker.errors.ContainerError):
            run(client, "echo no > /shared/g", volumes_from=["sdk-src:ro"])
        # Links: the alias resolves to the linked container (on the default bridge).
        src_ip = client.api.inspect_container("sdk-src")["NetworkSettings"]["IPAddress"]
        out = client.containers.run(IMG, [BB, "sh", "-c", "grep -w buddy /etc/hosts | cut -f1; echo $BUDDY_NAME"],
                                    links={"sdk-src": "buddy"}, remove=True).decode().split()
        assert out[0] == src_ip and out[1].endswith("/buddy"), out
        assert sorted(run(client, "id -G", group_add=["1234", "5"]).split()) == ["0", "1234", "5"]
        # Init: pid 1 is strata's init, the command its child; it exits as the command did.
        assert run(client, "cat /proc/1/comm; echo $$", init=True) == "strata\n2\n"
        # Its command line tells the container nothing of the host (no data-root path).
        assert run(client, "tr -d '\\0' < /proc/1/cmdline", init=True) == "strata-init"
        c = client.containers.run(IMG, [BB, "sh", "-c", "exit 9"], init=True, detach=True, network_mode="none")
        assert c.wait(timeout=30)["StatusCode"] == 9
        c.remove()
    finally:
        src.remove(force=True)


def test_namespaces_cpusets_shm_sysctls_paths(client):
    host_name = socket.gethostname()
    assert run(client, "hostname", uts_mode="host") == host_name + "\n"
    assert int(run(client, "ls /proc | grep -c '^[0-9]'", pid_mode="host")) > 5
    # Another container's namespaces: its hostname, its processes, its IPC.
    other = client.containers.run(IMG, [BB, "sleep", "60"], detach=True, hostname="nsother",
                                  network_mode="none")
    try:
        ipc = other.exec_run([BB, "readlink", "/proc/self/ns/ipc"]).output.decode()
        out = run(client, "ps -o args | grep -c '[s]leep 60'; readlink /proc/self/ns/ipc",
                  pid_mode="container:" + other.id, ipc_mode="container:" + other.name)
        assert out.split() == ["1", ipc.strip()], out
        # The SDK only knows uts_mode="host": the raw HostConfig.
        c = client.api.create_container(IMG, [BB, "hostname"], host_config={
            "UTSMode": "container:" + other.name, "NetworkMode": "none"})
        client.api.start(c)
        client.api.wait(c, timeout=30)
        assert client.api.logs(c) == b"nsother\n"
        client.api.remove_container(c)
    finally:
        other.remove(force=True)
    out = run(client, "grep Cpus_allowed_list /proc/self/status", cpuset_cpus="0", cpuset_mems="0")
    assert out.split() == ["Cpus_allowed_list:", "0"]
    assert run(client, "df -k /dev/shm | tail -1 | awk '{print $2}'", shm_size="3m") == "3072\n"
    assert run(client, "cat /proc/sys/kernel/shmmax", sysctls={"kernel.shmmax": "4242"}) == "4242\n"
    # A sysctl that would reach the host is refused.
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create(IMG, ["true"], sysctls={"kernel.hostname": "x"})
    assert e.value.status_code in (400, 500) and "kernel.hostname" in str(e.value)
    # MaskedPaths / ReadonlyPaths (no SDK keyword: the raw HostConfig).
    c = client.api.create_container(IMG, [BB, "sh", "-c", "cat /etc/passwd | wc -c; touch /tmp/x 2>&1"],
                                    host_config={"MaskedPaths": ["/etc/passwd"], "ReadonlyPaths": ["/tmp"],
                                                 "NetworkMode": "none"})
    client.api.start(c)
    client.api.wait(c, timeout=30)
    out = client.api.logs(c).decode()
    assert out.startswith("0\n") and "Read-only file system" in out, out
    client.api.remove_container(c)
    # cgroup v1 controls: applied on a v1 host, refused by name on a v2 one.
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    for field, kw, path, want in [
            ("MemorySwappiness", {"mem_swappiness": 60}, "memory.swappiness", "60"),
            ("OomKillDisable", {"oom_kill_disable": True}, "memory.oom_control", "oom_kill_disable 1")]:
        if v2:
            with pytest.raises(docker.errors.APIError) as e:
                client.containers.create(IMG, ["true"], **kw)
            assert e.value.status_code == 400 and field in str(e.value)
            continue
        c = client.containers.run(IMG, [BB, "sleep", "30"], detach=True, network_mode="none", **kw)
        try:
            assert c.attrs["HostConfig"][field] == list(kw.values())[0]
            with open(f"/sys/fs/cgroup/memory/strata/{c.id}/{path}") as f:
                assert want in f.read()
        finally:
            c.remove(force=True)


def test_archives_in_volumes_and_binds(client, tmp_path):
    os.chmod(tmp_path, 0o755)
    (tmp_path / "onhost").write_text("from the bind\n")
    c = client.containers.run(IMG, [BB, "sleep", "60"], detach=True, network_mode="none",
                              volumes={"sdk-arch": {"bind": "/vol", "mode": "rw"},
                                       str(tmp_path): {"bind": "/bind", "mode": "rw"}})
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = b"into the volume\n"
            info = tarfile.TarInfo("put.txt")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        assert c.put_archive("/vol", buf.getvalue())
        assert c.exec_run([BB, "cat", "/vol/put.txt"]).output == b"into the volume\n"
        # Into a bind: lands on the host.
        assert c.put_archive("/bind", buf.getvalue())
        assert (tmp_path / "put.txt").read_bytes() == b"into the volume\n"
        stream, stat = c.get_archive("/bind/onhost")
        assert stat["name"] == "onhost" and stat["size"] == len("from the bind\n")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
            assert t.extractfile("onhost").read() == b"from the bind\n"
        stream, stat = c.get_archive("/vol/put.txt")
        assert stat["size"] == len("into the volume\n")
        # HEAD (stat only) on a volume path.
        r = client.api.head(client.api._url("/containers/{0}/archive", c.id), params={"path": "/vol"})
        assert r.status_code == 200 and "X-Docker-Container-Path-Stat" in r.headers, r.headers
    finally:
        c.remove(force=True)


def test_raw_terminal_streams_and_attach_without_stream(client):
    c = client.containers.run(IMG, [BB, "sh", "-c", "echo ready; sleep 60"], detach=True, tty=True,
                              network_mode="none")
    try:
        for _ in range(100):
            if b"ready" in c.logs():
                break
            time.sleep(0.05)
        # exec with a terminal: one raw stream (no 8-byte frame headers).
        low = client.api
        ex = low.exec_create(c.id, [BB, "echo", "raw"], tty=True)
        out = low.exec_start(ex["Id"], tty=True)
        assert out == b"raw\r\n", out
        # attach with stream=false returns what was logged, raw for a terminal.
        got = c.attach(stdout=True, stderr=True, stream=False, logs=True)
        assert got == b"ready\r\n", got
    finally:
        c.remove(force=True)
    # Without a terminal: attach(stream=False, logs=True) demultiplexes both streams.
    c = client.containers.run(IMG, [BB, "sh", "-c", "echo out; echo err >&2"], detach=True, network_mode="none")
    try:
        wait_exit(c)
        got = c.attach(stdout=True, stderr=False, stream=False, logs=True)
        assert got == b"out\n", got
        got = c.attach(stdout=False, stderr=True, stream=False, logs=True)
        assert got == b"err\n", got
    finally:
        c.remove()


def test_logs_until(client):
    c = client.containers.run(IMG, [BB, "sh", "-c", "echo early; sleep 2; echo late"], detach=True,
                              network_mode="none")
    try:
        wait_exit(c)
        lines = c.logs(timestamps=True).decode().splitlines()
        assert [l.split(" ", 1)[1] for l in lines] == ["early", "late"], lines
        stamp = lines[0].split(" ", 1)[0]
        t0 = datetime.datetime.strptime(stamp[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")
        cut = t0.replace(tzinfo=datetime.timezone.utc).timestamp() + 1
        assert c.logs(until=cut) == b"early\n"
        assert c.logs(since=cut) == b"late\n"
        assert c.logs() == b"early\nlate\n"
    finally:
        c.remove()


def test_prune_and_list_filters(client):
    keep = client.containers.create(IMG, ["true"], name="sdk-keep", labels={"tier": "keep"})
    drop = client.containers.create(IMG, ["true"], name="sdk-drop", labels={"tier": "drop"})
    try:
        names = {c.name for c in client.containers.list(all=True, filters={"label": "tier"})}
        assert names == {"sdk-keep", "sdk-drop"}
        assert [c.name for c in client.containers.list(all=True, filters={"label": "tier=drop"})] == ["sdk-drop"]
        assert {c.name for c in client.containers.list(all=True, filters={"ancestor": IMG, "label": "tier"})} == names
        assert [c.name for c in client.containers.list(all=True, filters={"status": "created", "name": "sdk-keep"})] == ["sdk-keep"]
        assert [c.name for c in client.containers.list(all=True, filters={"before": "sdk-drop", "label": "tier"})] == ["sdk-keep"]
        assert [c.name for c in client.containers.list(all=True, filters={"since": "sdk-keep", "label": "tier"})] == ["sdk-drop"]
        with pytest.raises(docker.errors.APIError) as e:
            client.containers.list(filters={"nonsense": "x"})
        assert e.value.status_code == 400
        # Prune removes exactly what its filters match, and says what it removed.
        r = client.containers.prune(filters={"label": "tier=drop"})
        assert r["ContainersDeleted"] == [drop.id], r
        assert [c.name for c in client.containers.list(all=True, filters={"label": "tier"})] == ["sdk-keep"]
    finally:
        for c in (keep, drop):
            try:
                c.remove(force=True)
            except docker.errors.NotFound:
                pass
    # Volumes: labels and options echoed exactly; filters; prune by label.
    v = client.volumes.create("sdk-lab", labels={"team": "a"}, driver_opts={})
    w = client.volumes.create("sdk-other", labels={"team": "b"})
    try:
        assert v.attrs["Labels"] == {"team": "a"}
        assert client.volumes.get("sdk-lab").attrs["Options"] in (None, {})
        assert [x.name for x in client.volumes.list(filters={"label": "team=a"})] == ["sdk-lab"]
        assert {x.name for x in client.volumes.list(filters={"name": "sdk-"})} >= {"sdk-lab", "sdk-other"}
        assert "sdk-lab" in [x.name for x in client.volumes.list(filters={"dangling": "true"})]
        r = client.volumes.prune(filters={"label": "team=b", "all": "true"})
        assert r["VolumesDeleted"] == ["sdk-other"], r
    finally:
        for x in ("sdk-lab", "sdk-other"):
            try:
                client.volumes.get(x).remove()
            except docker.errors.NotFound:
                pass
    # Networks: labels echoed, filters, prune by label.
    n = client.networks.create("sdk-labnet", labels={"team": "a"})
    m = client.networks.create("sdk-labnet2", labels={"team": "b"})
    try:
        assert client.networks.get("sdk-labnet").attrs["Labels"] == {"team": "a"}
        assert client.networks.get("sdk-labnet").attrs["Options"] == {}
        assert [x.name for x in client.networks.list(filters={"label": "team=a"})] == ["sdk-labnet"]
        assert {x.name for x in client.networks.list(filters={"type": "custom", "name": "sdk-labnet"})} == {"sdk-labnet", "sdk-labnet2"}
        assert "bridge" not in [x.name for x in client.networks.list(filters={"type": "custom"})]
        r = client.networks.prune(filters={"label": "team=b"})
        assert r["NetworksDeleted"] == ["sdk-labnet2"], r
    finally:
        for x in ("sdk-labnet", "sdk-labnet2"):
            try:
                client.networks.get(x).remove()
            except docker.errors.NotFound:
                pass
    # Images: reference and dangling filters.
    assert [i.tags for i in client.images.list(filters={"reference": "busybox-wh:*"})] == [[IMG]]
    assert client.images.list(filters={"dangling": "true", "reference": "busybox-wh"}) == []


def test_image_load_message_stream(client):
    with open(os.environ["STRATA_FIXTURE"], "rb") as f:
        data = f.read()
    msgs = list(client.api.load_image(data, quiet=False))
    assert any("Loaded image: busybox-wh:1" in m.get("stream", "") for m in msgs), msgs
    msgs = list(client.api.load_image(data, quiet=True))
    assert msgs and all("errorDetail" not in m for m in msgs), msgs


def test_error_texts_clients_match(client):
    c = client.containers.run(IMG, [BB, "sleep", "60"], detach=True, network_mode="none")
    try:
        with pytest.raises(docker.errors.APIError) as e:
            c.remove()
        assert e.value.status_code == 409
        assert "You cannot remove a running container" in str(e.value)
        assert "Stop the container before attempting removal or force remove" in str(e.value)
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound) as e:
        client.containers.get("sdk-nope")
    assert "No such container: sdk-nope" in str(e.value)
