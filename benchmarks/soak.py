"""Soak: the real daemon at a high message rate with hostile clients attached; its memory, threads and descriptors
over time must stay flat.

    python benchmarks/soak.py [--streams 20] [--seconds 300] [--every 15]

Runs `streamgenre serve --fast` on long music files (every stream classified as fast as the CPU allows) on
127.0.0.1, attaches clients that never read, clients that connect and drop in a loop, clients that send junk, and one
well-behaved client that checks every stream's `seq` for gaps; samples the daemon's RSS, threads and open
descriptors from /proc. Prints a row per sample, then the growth over the second half of the run and what the
well-behaved client lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from daemon import free_port  # noqa: E402

SHARED_MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "music"


def long_music(path: Path, minutes: float) -> Path:
    """Real music where ../shared has some (else noise with a spectrum's slope), tiled to `minutes`."""
    from streamgenre.audio import load_audio

    files = sorted(SHARED_MUSIC.glob("*.ogg"))
    if files:
        audio = np.concatenate([load_audio(f) for f in files])
    else:
        audio = np.cumsum(np.random.default_rng(0).standard_normal(22050 * 60)).astype(np.float32) * 1e-3
    soundfile.write(path, np.resize(audio, int(minutes * 60 * 22050)), 22050, subtype="PCM_16")
    return path


def sample(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    value = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    value = {k: v.split()[0] for k, v in value.items() if v.split()}
    return {"rss_mb": int(value["VmRSS"]) / 1024, "threads": int(value["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


async def never_read(port: int, held: list) -> None:
    """A raw client: handshakes, then never reads (its socket buffers fill, the daemon must drop for it)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    held.append(s)


async def churn(port: int, stop: asyncio.Event) -> None:
    """Connect, send junk, drop; again and again."""
    while not stop.is_set():
        try:
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await ws.send("garbage")
                await ws.send(b"\x00\xff" * 100)
        except Exception:
            pass
        await asyncio.sleep(0.05)


async def well_behaved(port: int, stop: asyncio.Event, gaps: dict) -> None:
    async with connect(f"ws://127.0.0.1:{port}", max_queue=None) as ws:
        last: dict[str, int] = {}
        while not stop.is_set():
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            except asyncio.TimeoutError:
                continue
            if message["type"] == "prediction":
                name, seq = message["stream"], message["seq"]
                gaps["received"] += 1
                gaps["lost"] += max(0, seq - last.get(name, seq - 1) - 1)
                last[name] = seq


async def soak(args, port: int, pid: int) -> list[dict]:
    stop, held, gaps = asyncio.Event(), [], {"received": 0, "lost": 0}
    tasks = [asyncio.create_task(well_behaved(port, stop, gaps))]
    for _ in range(args.stalled):
        await never_read(port, held)
    tasks += [asyncio.create_task(churn(port, stop)) for _ in range(args.churners)]
    rows, started = [], time.monotonic()
    while time.monotonic() - started < args.seconds:
        await asyncio.sleep(args.every)
        row = sample(pid) | {"t": time.monotonic() - started, "received": gaps["received"], "lost": gaps["lost"]}
        rows.append(row)
        print(f"{row['t']:6.0f} {row['rss_mb']:8.1f} {row['threads']:7d} {row['fds']:5d} {row['received']:9d} "
              f"{row['lost']:5d}", flush=True)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for s in held:
        s.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--every", type=float, default=15)
    parser.add_argument("--stalled", type=int, default=100, help="clients that never read")
    parser.add_argument("--churners", type=int, default=5, help="clients that connect, send junk and drop, in a loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        music = long_music(Path(tmp) / "long.wav", minutes=args.seconds / 3)  # 20 s of audio a second: no stream ends
        port = free_port()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "streamgenre", "serve", "--fast", "--port", str(port), "--log-level", "warning",
             "--max-clients", str(args.stalled + args.churners + 10), *[f"s{i}={music}" for i in range(args.streams)]],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(5)
            print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.streams} "
                  f"streams at full speed, {args.stalled} clients that never read, {args.churners} churning")
            print(f"{'s':>6} {'RSS MB':>8} {'threads':>7} {'fds':>5} {'received':>9} {'lost':>5}")
            rows = asyncio.run(soak(args, port, daemon.pid))
        finally:
            daemon.terminate()
            log = daemon.communicate(timeout=20)[1]
    first, second = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    rate = (rows[-1]["received"] - rows[0]["received"]) / max(rows[-1]["t"] - rows[0]["t"], 1e-9)

    def spread(part, key):
        return f"{min(r[key] for r in part):.0f}-{max(r[key] for r in part):.0f}"

    print(f"first half / second half: RSS {spread(first, 'rss_mb')} / {spread(second, 'rss_mb')} MB, threads "
          f"{spread(first, 'threads')} / {spread(second, 'threads')}, descriptors {spread(first, 'fds')} / "
          f"{spread(second, 'fds')}; the well-behaved client received {rate:.0f} predictions/s and lost "
          f"{rows[-1]['lost']}; daemon log: {len(log.splitlines())} lines")

if __name__ == "__main__":
    main()
