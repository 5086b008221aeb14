"""`serve --cluster` on a real local Ray cluster: three shards of real music files, a real WebSocket client, a shard
actor killed with SIGKILL, a reload. Ray binds to the machine's other addresses by default, so the file's tests
run again, together, inside a network namespace that has only loopback (`unshare -n`, as root), and check that
nothing listens beyond 127.0.0.1 and ::1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from xml.etree import ElementTree

import pytest

from conftest import poll
from daemon import (collect, http_get, kill_a_shard_and_see_its_streams_resume, music_files, predictions,
                    reload_and_see, running_daemon, shard_pids)

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[cluster]')")

IN_NAMESPACE = os.environ.get("STREAMGENRE_LOOPBACK_ONLY") == "1"
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::1


@pytest.fixture(scope="module")
def loopback_outcomes(tmp_path_factory) -> tuple[dict, str]:
    """Outside the namespace: this file's tests, run once inside a new namespace with only loopback up (one Python
    start for all of them); each test's outcome ("passed", "failed" or "skipped", and why) by name, and the run's
    output."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("Ray must run in a network namespace with only loopback: that takes root, unshare and ip")
    report = tmp_path_factory.mktemp("loopback") / "junit.xml"
    command = (f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider {__file__} "
               f"--junitxml={report}")
    run = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, timeout=900,
                         env=os.environ | {"STREAMGENRE_LOOPBACK_ONLY": "1"})
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase") if report.exists() else ():
        problem = next((e for e in case if e.tag in ("failure", "error", "skipped")), None)
        outcomes[case.get("name")] = ("passed", "") if problem is None else (
            "skipped" if problem.tag == "skipped" else "failed", problem.get("message") or "")
    return outcomes, run.stdout[-6000:] + run.stderr[-3000:]


def ran_in_loopback_namespace(request) -> bool:
    """Outside the namespace: this test's outcome inside it, as its own (True); inside: False, run it here."""
    if IN_NAMESPACE:
        return False
    outcomes, output = request.getfixturevalue("loopback_outcomes")
    outcome, why = outcomes.get(request.node.name, ("failed", "it did not run"))
    if outcome == "skipped":
        pytest.skip(why)
    assert outcome == "passed", f"{why}\n{output}"
    return True


def listening_addresses() -> set[str]:
    """Local addresses (hex, as the kernel writes them) of every listening TCP socket in this network namespace."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A":  # LISTEN
                    found.add(local.split(":")[0])
    return found


def write_config(path, sources: dict) -> None:
    lines = ["shard_cpus = 0.5", "history = \"off\""]
    for name, file in sources.items():
        lines += ["[[source]]", f'name = "{name}"', f'file = "{file}"']
    path.write_text("\n".join(lines) + "\n")


def test_streams_spread_over_shards_survive_a_killed_shard_and_a_reload(tmp_path, request):
    if ran_in_loopback_namespace(request):
        return
    files = music_files(tmp_path, 4)
    config = tmp_path / "streamgenre.toml"
    write_config(config, {"a": files[0], "b": files[1], "c": files[2]})
    with running_daemon("--cluster", "ray", "--shard-size", "1", "--config", str(config)) as (port, proc):
        # every stream's predictions arrive, through one WebSocket
        got = collect(port, lambda ms: all(len(predictions([(0, m) for m in ms], s)) >= 2 for s in "abc"),
                      timeout=90)
        hello = got[0][1]
        assert [s["name"] for s in hello["streams"]] == ["a", "b", "c"] and hello["type"] == "hello"
        assert all(len(predictions(got, s)) >= 2 for s in "abc")
        assert listening_addresses() <= LOOPBACK, listening_addresses()

        # kill -9 the process of the shard that serves b: b resumes within 15 s, a and c keep their rhythm
        metrics = http_get(port, "/metrics")[1]
        assert 'streamgenre_model_info{' in metrics and "streamgenre_windows_total{stream=\"a\"}" in metrics
        kill_a_shard_and_see_its_streams_resume(port, 1, "b", "ac")
        # a reload removes b and adds d; a and c go on uninterrupted
        write_config(config, {"a": files[0], "c": files[2], "d": files[3]})
        after = reload_and_see(port, proc, "b", "d", "ac")
        assert [s["name"] for s in after[0][1]["streams"]] == ["a", "c", "d"]  # a new client's hello
    assert proc.returncode == 0


def test_a_coordinator_killed_and_restarted_finds_its_shards_still_running(tmp_path, request):
    if ran_in_loopback_namespace(request):
        return
    from daemon import free_port

    ray_cli = str(os.path.join(os.path.dirname(sys.executable), "ray"))
    head = free_port()
    # a cluster of its own, as `ray start` makes one on a head node (token authentication off: it is alone on
    # loopback in this namespace, and its token would otherwise have to be shared through the user's ~/.ray)
    env = os.environ | {"RAY_ADDRESS": f"127.0.0.1:{head}", "RAY_AUTH_MODE": "disabled"}
    started = subprocess.run([ray_cli, "start", "--head", f"--port={head}", "--num-cpus=2", "--include-dashboard=false",
                              "--disable-usage-stats"], capture_output=True, text=True, timeout=120, env=env)
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        files = music_files(tmp_path, 2)
        config = tmp_path / "streamgenre.toml"
        write_config(config, {"a": files[0], "b": files[1]})
        both = lambda ms: all(len(predictions([(0, m) for m in ms], s)) >= 2 for s in "ab")  # noqa: E731
        with running_daemon("--cluster", "ray", "--shard-size", "1", "--config", str(config), env=env) as (port, proc):
            collect(port, both, timeout=90)
            before = shard_pids(port)
            proc.kill()  # as a crash would: the shards, detached, run on
            proc.wait(timeout=10)
        assert sorted(before) == ["0", "1"]
        for pid in before.values():
            os.kill(pid, 0)  # still running
        with running_daemon("--cluster", "ray", "--shard-size", "1", "--config", str(config), env=env) as (port, proc):
            got = collect(port, both, timeout=60)
            assert shard_pids(port) == before  # found, not started anew
        assert all(len(predictions(got, s)) >= 2 for s in "ab")
        running = lambda: [pid for pid in before.values() if os.path.exists(f"/proc/{pid}")]  # noqa: E731
        assert not poll(running, lambda left: not left, timeout=20, every=0.5)  # a clean stop stops the shards too
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120, env=env)


def test_more_shards_than_cpus_all_run_by_default_and_a_shard_that_cannot_be_placed_says_so(tmp_path, request):
    """3 shards of 1 stream on this machine's cores (2 here): by default each asks for a share that fits, and all
    three predict; asked for 1 CPU each where there are fewer, the one Ray cannot place is "waiting for resources"
    in /healthz and /metrics, not "does not answer"."""
    if ran_in_loopback_namespace(request):
        return
    files = music_files(tmp_path, 3)
    sources = {"a": files[0], "b": files[1], "c": files[2]}
    cpus = os.cpu_count()
    if cpus > 2:
        pytest.skip(f"needs more shards than CPUs: 3 shards, {cpus} CPUs here")
    config = tmp_path / "auto.toml"
    write_config(config, sources)
    config.write_text(config.read_text().replace("shard_cpus = 0.5", 'shard_cpus = "auto"'))
    with running_daemon("--cluster", "ray", "--shard-size", "1", "--config", str(config)) as (port, proc):
        got = collect(port, lambda ms: all(len(predictions([(0, m) for m in ms], s)) >= 2 for s in "abc"),
                      timeout=120)
    assert all(len(predictions(got, s)) >= 2 for s in "abc")
    config = tmp_path / "one-each.toml"
    write_config(config, sources)
    config.write_text(config.read_text().replace("shard_cpus = 0.5", "shard_cpus = 1"))
    with running_daemon("--cluster", "ray", "--shard-size", "1", "--config", str(config)) as (port, proc):
        health = poll(lambda: http_get(port, "/healthz"), lambda h: "waiting for resources" in h[1], timeout=90,
                      every=1)
        metrics = http_get(port, "/metrics")[1]
    assert health[0] == 503 and re.search(r"shard \d waiting for resources: needs 1 CPU, the cluster has 0 free",
                                          health[1]), health
    assert re.search(r'streamgenre_shard_waiting_for_resources\{shard="\d"\} 1.0', metrics)
