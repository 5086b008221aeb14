"""`serve --workers N`: the streams spread over worker processes on this machine, served as one daemon. Real music
files, the real daemon, a real WebSocket client; a worker killed with SIGKILL; the same audio through one process."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from conftest import poll, synth_music, write_audio
from daemon import (collect, http_get, kill_a_shard_and_see_its_streams_resume, music_files, predictions,
                    reload_and_see, running_daemon, shard_pids)

pytestmark = pytest.mark.slow


def write_config(path, sources: dict) -> None:
    lines = ["workers = 2", "history = \"off\""]
    for name, file in sources.items():
        lines += ["[[source]]", f'name = "{name}"', f'file = "{file}"']
    path.write_text("\n".join(lines) + "\n")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_a_killed_worker_comes_back_its_streams_resume_and_a_reload_fills_the_least_loaded(tmp_path):
    files = music_files(tmp_path, 4)
    config = tmp_path / "streamgenre.toml"
    write_config(config, {"a": files[0], "b": files[1], "c": files[2]})
    with running_daemon("--config", str(config)) as (port, proc):
        got = collect(port, lambda ms: all(len(predictions([(0, m) for m in ms], s)) >= 2 for s in "abc"),
                      timeout=60)
        assert [s["name"] for s in got[0][1]["streams"]] == ["a", "b", "c"]
        assert not [m for _, m in got if m["type"] == "status" and m["event"] == "interrupted"]  # starting: not down
        pids = shard_pids(port)
        assert len(pids) == 2 and proc.pid not in pids.values()
        metrics = http_get(port, "/metrics")[1]
        assert 'streamgenre_shard_streams{shard="0"} 2.0' in metrics  # a and c: streams alternate
        assert 'streamgenre_shard_streams{shard="1"} 1.0' in metrics

        kill_a_shard_and_see_its_streams_resume(port, 0, "ac", "b")
        assert shard_pids(port)["1"] == pids["1"] and shard_pids(port)["0"] != pids["0"]

        # a reload removes a; d goes to the least loaded worker (0 has c, 1 has b: the first of equals, 0)
        write_config(config, {"b": files[1], "c": files[2], "d": files[3]})
        reload_and_see(port, proc, "a", "d", "bc")
        assert 'streamgenre_shard_streams{shard="0"} 2.0' in http_get(port, "/metrics")[1]
        workers = list(shard_pids(port).values())
    assert proc.returncode == 0
    time.sleep(0.5)
    assert not [pid for pid in workers if alive(pid)]  # the workers stop with the daemon


def test_workers_end_when_their_coordinator_is_killed(tmp_path):
    audio = write_audio(tmp_path / "m.wav", np.tile(synth_music(20.0, seed=1), 4))
    with running_daemon("--workers", "2", "--history", "off", f"a={audio}", f"b={audio}") as (port, proc):
        collect(port, lambda ms: all(predictions([(0, m) for m in ms], s) for s in "ab"), timeout=60)
        workers = list(shard_pids(port).values())
        proc.kill()
        poll(lambda: not any(alive(pid) for pid in workers), every=0.2)
    assert len(workers) == 2 and not [pid for pid in workers if alive(pid)]


def test_two_workers_send_what_one_process_sends(tmp_path):
    """The same files through 2 workers and through this process: the same windows, the same probabilities."""
    files = [write_audio(tmp_path / f"m{i}.wav", synth_music(12.0, seed=i)) for i in range(3)]
    runs = {}
    for workers in ("1", "2"):
        args = ["--workers", workers, "--history", "off", "--once"] + [f"s{i}={f}" for i, f in enumerate(files)]
        with running_daemon(*args) as (port, _):
            got = collect(port, lambda ms: all(len(predictions([(0, m) for m in ms], f"s{i}")) >= 5
                                               for i in range(3)), timeout=60)
            runs[workers] = {(m["stream"], m["time"]): m for m in predictions(got)}
            assert (workers == "2") == bool(shard_pids(port))
    common = set(runs["1"]) & set(runs["2"])
    assert len(common) >= 12, (sorted(runs["1"]), sorted(runs["2"]))
    for key in common:
        one, two = runs["1"][key], runs["2"][key]
        assert one["content"] == two["content"] and one["genre"] == two["genre"], key
        assert np.allclose(list(one["probabilities"].values()), list(two["probabilities"].values()), atol=1e-4)
        assert np.allclose(list(one["average"].values()), list(two["average"].values()), atol=1e-4)
