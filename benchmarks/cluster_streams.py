"""The same stream set served by one process and by a Ray cluster on this machine: windows, late windows, latency
and the whole machine's CPU per stream.

    sudo python benchmarks/cluster_streams.py [--streams 100 200] [--seconds 30] [--shard-size 50] [--shard-cpus 0.5]

Each run is a real `streamgenre serve` (the clustered one with `--cluster ray --shard-size N`), fed N copies of a
real music file (decoded once to a 22,050-Hz WAV file) played at real time, with one WebSocket client that receives every message for --seconds after a
warm-up. CPU is the machine's (from /proc/stat), so the Ray processes count too. Ray binds beyond loopback by
default: run as root, and the benchmark runs itself again inside a network namespace that has only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from websockets.asyncio.client import connect

from streamgenre.audio import SAMPLE_RATE, load_audio

SHARED_MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "music"
LATE_MS = 500


def busy_and_total() -> tuple[int, int]:
    """Jiffies the machine spent busy, and in all, since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def measure(port: int, streams: int, seconds: float) -> dict:
    async with connect(f"ws://127.0.0.1:{port}", max_queue=None) as ws:
        seen, deadline = set(), time.monotonic() + 60
        while len(seen) < streams and time.monotonic() < deadline:  # warm-up: every stream has sent a window
            message = json.loads(await ws.recv())
            if message["type"] == "prediction":
                seen.add(message["stream"])
        busy0, total0 = busy_and_total()
        windows, latencies, end = 0, [], time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except asyncio.TimeoutError:
                continue
            if message["type"] == "prediction":
                windows += 1
                latencies.append(message["latency_ms"])
        busy1, total1 = busy_and_total()
    share = (busy1 - busy0) / (total1 - total0)  # of the whole machine
    return {"ready": len(seen), "windows": windows, "late": sum(x > LATE_MS for x in latencies),
            "p99_ms": float(np.percentile(latencies, 99)) if latencies else float("nan"),
            "cpu_ms_per_stream_second": 1000 * share * os.cpu_count() / streams}


def run(streams: int, seconds: float, music: Path, cluster_args: list[str], shard_cpus: float) -> dict:
    folder = Path(tempfile.mkdtemp())
    config = folder / "streamgenre.toml"
    config.write_text(f'history = "off"\nshard_cpus = {shard_cpus}\n' + "".join(
        f'[[source]]\nname = "s{i}"\nfile = "{music}"\n' for i in range(streams)))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamgenre", "serve", "--config", str(config), "--port", str(port),
                             "--log-level", "warning", *cluster_args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the daemon did not start: {proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.2)
        return asyncio.run(measure(port, streams, seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--shard-cpus", type=float, default=0.5, help="CPUs each shard asks Ray for: the shards "
                        "must fit the machine's cores together")
    args = parser.parse_args()
    if os.environ.get("STREAMGENRE_LOOPBACK_ONLY") != "1":
        if os.geteuid() != 0:
            sys.exit("run as root: Ray runs in a network namespace with only loopback (unshare -n)")
        command = f"ip link set lo up && exec {sys.executable} {' '.join(map(str, sys.argv))}"
        sys.exit(subprocess.run(["unshare", "-n", "sh", "-c", command],
                                env=os.environ | {"STREAMGENRE_LOOPBACK_ONLY": "1"}).returncode)
    longest = max(SHARED_MUSIC.glob("*.ogg"), key=lambda p: p.stat().st_size, default=None)
    if longest is None:
        sys.exit(f"no music in {SHARED_MUSIC}")
    music = Path(tempfile.mkdtemp()) / f"{longest.stem}.wav"  # decoded once: Vorbis decoding would cost more than
    soundfile.write(music, load_audio(longest), SAMPLE_RATE)  # the CNN, and it is the same in both modes
    print(f"machine: {os.cpu_count()} cores; music: {music.name}; {args.seconds:.0f} s measured after a warm-up")
    print(f"{'streams':>7} {'mode':>24} {'windows':>7} {'late':>5} {'p99 ms':>7} {'CPU ms/stream/s':>15}")
    for n in args.streams:
        for mode, extra in (("single process", []),
                            (f"Ray, shards of {args.shard_size}", ["--cluster", "ray", "--shard-size",
                                                                   str(args.shard_size)])):
            r = run(n, args.seconds, music, extra, args.shard_cpus)
            print(f"{n:7d} {mode:>24} {r['windows']:7d} {r['late']:5d} {r['p99_ms']:7.1f} "
                  f"{r['cpu_ms_per_stream_second']:15.2f}" + ("" if r["ready"] == n else f"  ({r['ready']} ready)"),
                  flush=True)
    print(f"late: more than {LATE_MS} ms from a window's last sample to its message (the shard's own measure)")


if __name__ == "__main__":
    main()
