"""Helpers for end-to-end tests: the real `streamgenre serve` in a subprocess and a real WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
from websockets.asyncio.client import connect

from conftest import SHARED_MUSIC, synth_music, write_audio


def http_get(port: int, path: str) -> tuple[int, str]:
    """A plain HTTP GET to the daemon: (status, body), error statuses included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_daemon(*args: str, env: dict | None = None, descriptors: int | None = None):
    """`streamgenre serve ARGS` on a free port, under a limit of `descriptors` open files where given; yields
    (port, process); stops it with SIGTERM."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamgenre", "serve", *args, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=descriptors and (lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                                    (descriptors, descriptors))))
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start:\n{proc.stdout.read()}")
            time.sleep(0.1)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def gather(port: int, until, timeout: float, send: list | None = None, raw: bool = False) -> list[tuple]:
    """Connect, send `send`, and gather (arrival time, message) until until(messages) or the timeout; with `raw`,
    the messages as the text that was sent."""
    got, texts = [], []
    async with connect(f"ws://127.0.0.1:{port}") as ws:
        for message in send or []:
            await ws.send(message if isinstance(message, str) else json.dumps(message))
        deadline = time.monotonic() + timeout
        while not until([m for _, m in got]) and time.monotonic() < deadline:
            try:
                text = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            got.append((time.monotonic(), json.loads(text)))
            texts.append((got[-1][0], text))
    return texts if raw else got


def collect(port: int, until, timeout: float, send: list | None = None, raw: bool = False) -> list[tuple]:
    return asyncio.run(gather(port, until, timeout, send, raw))


def predictions(messages, stream: str | None = None) -> list[dict]:
    return [m for _, m in messages if m["type"] == "prediction" and (stream is None or m["stream"] == stream)]


def music_files(tmp_path, count: int) -> list:
    """`count` files of music for streams that run through a whole test: real music where ../shared has some (the
    longer files first come, repeated where there are fewer), else synthetic music."""
    if SHARED_MUSIC:
        found = [p for p in SHARED_MUSIC if p.stat().st_size > 200_000] or SHARED_MUSIC
        return [found[i % len(found)] for i in range(count)]
    return [write_audio(tmp_path / f"m{i}.wav", np.tile(synth_music(20.0, seed=i), 4)) for i in range(count)]


def shard_pids(port: int) -> dict[str, int]:
    """Each running shard's (or worker's) process id, as /metrics names them."""
    metrics = http_get(port, "/metrics")[1]
    return {shard: int(pid) for pid, shard in re.findall(r'streamgenre_shard_up\{node="[^"]*",pid="(\d+)",'
                                                        r'shard="(\d+)"\} 1.0', metrics)}


def kill_a_shard_and_see_its_streams_resume(port: int, shard: int, streams: str, others: str) -> None:
    """kill -9 the process of `shard` (which serves `streams`): /healthz says so, each of them is interrupted and
    resumes within 15 s, the `others` keep their rhythm, and the restart is counted."""
    metrics = http_get(port, "/metrics")[1]
    pid = int(re.search(rf'streamgenre_shard_up\{{node="[^"]*",pid="(\d+)",shard="{shard}"\}} 1.0', metrics).group(1))

    def resumed_and_predicting(messages: list, name: str) -> bool:
        mine = [m for m in messages if m.get("stream") == name]
        at = next((i for i, m in enumerate(mine) if m["type"] == "status" and m["event"] == "resumed"), None)
        return at is not None and any(m["type"] == "prediction" for m in mine[at + 1 :])

    def seen_enough(messages: list) -> bool:
        """Each of `streams` predicts again after it resumed; each of `others` sent the 10 windows judged below."""
        return (all(resumed_and_predicting(messages, name) for name in streams) and
                all(len(predictions([(0, m) for m in messages], other)) >= 10 for other in others))

    during: list = []
    watcher = threading.Thread(target=lambda: during.extend(collect(port, seen_enough, timeout=22)))
    watcher.start()
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    health = []
    while time.monotonic() - killed < 15 and not any(code == 503 for code, _ in health):
        health.append(http_get(port, "/healthz"))
        time.sleep(0.2)
    watcher.join()
    for name in streams:
        assert any(code == 503 and f"{name}: interrupted: shard {shard}" in body for code, body in health), health
        events = [(t, m) for t, m in during if m["type"] == "status" and m["stream"] == name]
        assert [m["event"] for _, m in events][:2] == ["interrupted", "resumed"], events
        assert re.match(rf"{name}: resumed after \d+\.\d s \(shard {shard}, pid \d+", events[1][1]["message"])
        resumed = [t for t, m in during if m["type"] == "prediction" and m["stream"] == name and t > killed]
        assert resumed and resumed[0] - killed < 15.0
    for other in others:
        arrivals = [t for t, m in during if m["type"] == "prediction" and m["stream"] == other]
        assert len(arrivals) >= 10 and max(np.diff(arrivals)) < 1.49 + 0.6, (other, np.diff(arrivals))
    assert f'streamgenre_shard_restarts_total{{shard="{shard}"}} 1.0' in http_get(port, "/metrics")[1]


def reload_and_see(port: int, proc, removed: str, added: str, unchanged: str) -> list[tuple]:
    """SIGHUP the daemon whose config was rewritten: `removed` is removed, `added` added and sends windows, the
    `unchanged` streams go on uninterrupted. Returns what a client saw meanwhile."""
    proc.send_signal(signal.SIGHUP)
    after = collect(port, lambda ms: len(predictions([(0, m) for m in ms], added)) >= 2, timeout=40)
    statuses = {(m["stream"], m["event"]) for _, m in after if m["type"] == "status"}
    assert (removed, "removed") in statuses and (added, "added") in statuses
    assert not {(name, event) for name in unchanged for event in ("added", "interrupted")} & statuses
    return after
