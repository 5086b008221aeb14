"""Helpers for end-to-end tests: the real `streamgenre serve` in a subprocess and a real WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from websockets.asyncio.client import connect


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
