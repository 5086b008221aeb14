"""SIGHUP (systemctl reload) rereads the config: a new stream starts, a removed one stops, the unchanged one goes on
without a gap, and the daemon lives on (it used to end with rc 129)."""

import asyncio
import json
import signal
import time

import numpy as np

from conftest import poll, synth_music, write_audio
from daemon import running_daemon
from websockets.asyncio.client import connect


def config_text(sources: dict) -> str:
    return "".join(f'[[source]]\nname = "{name}"\nfile = "{path}"\n' for name, path in sources.items())


def test_reload_adds_and_removes_streams_and_leaves_the_others_alone(tmp_path):
    files = {n: write_audio(tmp_path / f"{n}.wav", synth_music(40.0, seed=i)) for i, n in enumerate(("a", "b", "c"))}
    config = tmp_path / "streamgenre.toml"
    config.write_text(config_text({"a": files["a"], "b": files["b"]}))
    with running_daemon("--config", str(config)) as (port, proc):
        async def listen():
            got = []
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                started, reloaded = time.monotonic(), False
                while time.monotonic() - started < 16:
                    try:
                        got.append(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))
                    except asyncio.TimeoutError:
                        pass
                    if not reloaded and time.monotonic() - started > 5:
                        config.write_text(config_text({"a": files["a"], "c": files["c"]}))
                        proc.send_signal(signal.SIGHUP)
                        reloaded = time.monotonic()
            return got, reloaded
        got, reloaded = asyncio.run(listen())
        assert proc.poll() is None
    preds = {n: [m for m in got if m["type"] == "prediction" and m["stream"] == n] for n in "abc"}
    events = [(m["stream"], m["event"]) for m in got if m["type"] == "status"]
    assert ("b", "removed") in events and ("c", "added") in events
    assert len(preds["c"]) >= 3 and preds["c"][0]["seq"] == 1  # the new stream runs from its start
    b_after = next(i for i, m in enumerate(got) if m["type"] == "status" and m["event"] == "removed")
    assert not any(m["type"] == "prediction" and m["stream"] == "b" for m in got[b_after + 1 :])
    a = preds["a"]  # untouched: consecutive windows, 1.49 s of audio apart, through the reload
    assert len(a) >= 9 and [m["seq"] for m in a] == list(range(a[0]["seq"], a[0]["seq"] + len(a)))
    assert np.allclose(np.diff([m["time"] for m in a]), 128 * 256 / 22050, atol=1e-3)


def rss_mb(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024


def rss_once(pid: int, reached, timeout: float) -> float:
    """The daemon's resident memory once `reached(rss)` holds, or when `timeout` seconds have passed."""
    return poll(lambda: rss_mb(pid), reached, timeout, every=0.5)


def test_memory_grown_for_many_streams_is_given_back_when_they_go(tmp_path):
    """Reloads between 3 and 63 streams: back at 3, the daemon holds about what it held at 3 before (it kept
    the 63 streams' engine arenas and heap: 207 MB became 665 MB)."""
    music = write_audio(tmp_path / "m.wav", synth_music(30.0, seed=1))
    config = tmp_path / "streamgenre.toml"
    config.write_text(config_text({f"s{i}": music for i in range(3)}))
    with running_daemon("--config", str(config), "--history", "off") as (port, proc):
        time.sleep(8)
        before = rss_mb(proc.pid)
        for _ in range(2):
            config.write_text(config_text({f"s{i}": music for i in range(63)}))
            proc.send_signal(signal.SIGHUP)
            grown = rss_once(proc.pid, lambda rss: rss > before + 150, timeout=20)
            assert grown > before + 150, (before, grown)  # the 63 streams did grow it
            config.write_text(config_text({f"s{i}": music for i in range(3)}))
            proc.send_signal(signal.SIGHUP)
            # the removed sources end, then the memory is given back (RELEASE_AFTER_SECONDS)
            after = rss_once(proc.pid, lambda rss: rss < before + 60, timeout=20)
            assert after < before + 60, (before, grown, after)
