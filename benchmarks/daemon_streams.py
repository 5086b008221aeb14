"""How many real-time streams one daemon sustains on the CPU engine, with no late window.

    python benchmarks/daemon_streams.py [--model paper|musicnn] [--streams 100 250 500 750] [--seconds 30]
                                        [--history PATH|postgresql://...] [--whole] [--content on off]
                                        [--content-patches 2] [--every 4] [--hog]

For each stream count: that many streams of real music are fed into their ring buffers at real-time pace (one
feeder thread stands in for the sound cards and decoders, starts staggered so windows spread over time), through the
real pipeline (frontend, batched ONNX Runtime engine, running averages) and the real WebSocket server to one real
client that receives every message. Prints windows classified, late windows (> 0.5 s after their last sample
arrived), audio-to-message latency p50/p99, batch sizes, CPU time per stream, and where a window's time goes (wall
time in the frontend and in the engine, per window). With `--history`, each stream count runs twice, without and
with the genre log written to that database (a fresh SQLite file per run is best); with `--whole`, twice, first with
every window computed whole (as before streamgenre/columns.py), then with the columns a stream's windows carry;
`--content on off` runs each count with the content stage and without it (wall time per window in the content
stage's features and network too). `--every N` classifies every Nth window step of each stream (the daemon's
`--every`); `--hog` runs a busy loop in another process on one core for the whole run, as a busy server would.
`--workers N` runs the streams over N worker processes (the daemon's `--workers`, cluster/process_shards.py), each
feeding its share with a feeder thread of its own; latency is then the pipeline's in each worker, as in one process
(the coordinator's relay adds up to its poll interval, 0.1 s, before a client has it), and CPU is that of the
coordinator and its workers together; the per-stage times are not measured there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import threading
import time
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

from streamgenre.access import Access
from streamgenre.cli import SERVE_DEFAULTS
from streamgenre.cluster.coordinator import ClusterPipeline, shard_settings
from streamgenre.cluster.process_shards import ProcessShards
from streamgenre.cluster.shard import Shard
from streamgenre.audio import load_audio
from streamgenre.backends import create_engine
from streamgenre.content_stage import PATCHES_PER_STEP, create_content_stage
from streamgenre.frontend import create_frontend, limit_blas_threads
from streamgenre.history.recorder import Recorder
from streamgenre.model import load_model
from streamgenre.pipeline import LATE_SECONDS, Pipeline, Stream
from streamgenre.server import Broadcaster, serve
from streamgenre.sources import Source

CHUNK_SECONDS = 0.02  # a typical sound-card period
WARM_WINDOWS = 3  # windows every stream has sent before the measurement starts: the streams start within one step,
# so their first windows (computed whole, all within 1.5 s) and the backlog they leave are the start, not the steady state
SHARED_MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "music"


class FedSource(Source):
    """A source whose ring buffer the benchmark's feeder thread fills."""

    kind = "benchmark"

    def start(self) -> None:
        pass


def music(rate: int) -> np.ndarray:
    files = sorted(SHARED_MUSIC.glob("*.ogg"))
    if files:
        return np.concatenate([load_audio(f, rate=rate) for f in files])
    rng = np.random.default_rng(0)  # no shared music: noise shaped like a spectrum, still real work for the frontend
    return np.cumsum(rng.standard_normal(rate * 60)).astype(np.float32) * 1e-3


def feed(sources: list[Source], audio: np.ndarray, params, stop: threading.Event) -> None:
    """Write 20 ms of audio to every source every 20 ms; stream i starts i/len of a window step late."""
    start = time.monotonic()
    offsets = np.linspace(0, params.step_seconds, len(sources), endpoint=False)
    sent = np.zeros(len(sources), int)
    chunk = int(CHUNK_SECONDS * params.sample_rate)
    while not stop.is_set():
        now = time.monotonic() - start
        for i, source in enumerate(sources):
            due = int(max(0.0, now - offsets[i]) * params.sample_rate)
            while sent[i] + chunk <= due:
                at = (sent[i] + i * 7919) % (len(audio) - chunk)
                source.ring.write(audio[at : at + chunk])
                sent[i] += chunk
        stop.wait(0.02)


class Timed:
    """The real frontend and engine, with the wall time spent in each counted."""

    def __init__(self, frontend, engine, whole: bool):
        self.frontend, self.engine, self.whole = frontend, engine, whole
        self.seconds = {"frontend": 0.0, "engine": 0.0, "content": 0.0}

    def stream_windows(self, ids, steps):
        started = time.perf_counter()
        try:
            return self.frontend.stream_windows(ids, steps)
        finally:
            self.seconds["frontend"] += time.perf_counter() - started

    def infer(self, windows, streams=None):
        started = time.perf_counter()
        try:
            return self.engine.infer(windows, None if self.whole else streams)
        finally:
            self.seconds["engine"] += time.perf_counter() - started

    def __getattr__(self, name):  # everything else the pipeline asks of the frontend
        return getattr(self.frontend, name)


class TimedContent:
    """The real content stage, with the wall time of its features (the polling thread) and its network (the engine
    thread) counted."""

    def __init__(self, stage, timed: Timed):
        self.stage, self.timed = stage, timed

    def _timed(self, name, *args):
        started = time.perf_counter()
        try:
            return getattr(self.stage, name)(*args)
        finally:
            self.timed.seconds["content"] += time.perf_counter() - started

    def cut(self, *args):
        return self._timed("cut", *args)

    def features(self, *args):
        return self._timed("features", *args)

    def score(self, *args):
        return self._timed("score", *args)

    def decide(self, *args):
        return self._timed("decide", *args)


class FedShard(Shard):
    """A worker's shard whose streams are fed by a feeder thread in the worker, as `run` feeds one process's."""

    def __init__(self, index: int, settings: dict, specs: list[str]):
        super().__init__(index, settings, specs)
        audio = music(self.params.sample_rate)
        sources = [s.source for s in self.pipeline.streams]
        threading.Thread(target=feed, args=(sources, audio, self.params, threading.Event()), daemon=True).start()

    def _stream(self, spec: str) -> Stream:
        return Stream(FedSource(spec, self.params.sample_rate), "last:10", params=self.params,
                      every=self.settings["every"])


def cpu_seconds(pids: list[int]) -> float:
    """User and system time of these processes so far."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_workers(n: int, seconds: float, model_name: str, workers: int, every: int, content: str) -> dict:
    """`n` fed streams over `workers` worker processes behind the real coordinator and server."""
    settings = shard_settings(SERVE_DEFAULTS | {"model": model_name, "engine": "onnx", "frontend": "cpu",
                                                "every": every, "content": content, "loop": True}, realtime=True)
    broadcaster = Broadcaster(lambda: {"type": "hello"})
    pipeline = ClusterPipeline(ProcessShards(FedShard), [f"s{i}" for i in range(n)], settings, broadcaster.publish,
                               shards=workers)
    latencies, seen, result = [], {}, {}

    def skipped() -> int:
        return sum(s.counters()["skipped_windows"] for s in pipeline.streams)

    async def main():
        stop = asyncio.Event()
        server = asyncio.create_task(serve(pipeline, broadcaster, Access("127.0.0.1"), 8799, stop))
        for _ in range(600):  # the workers start (model, engine) before the server listens
            await asyncio.sleep(0.1)
            try:
                ws = await connect("ws://127.0.0.1:8799", max_queue=None)
                break
            except OSError:
                continue
        async with ws:
            async def receive(until: float, measure: bool):
                while time.monotonic() < until:
                    try:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    except asyncio.TimeoutError:
                        continue
                    if message["type"] == "prediction":
                        seen[message["stream"]] = seen.get(message["stream"], 0) + 1
                        if measure:
                            latencies.append(message["latency_ms"])
            warm_until = time.monotonic() + 120
            while (len(seen) < n or min(seen.values()) < WARM_WINDOWS) and time.monotonic() < warm_until:
                await receive(time.monotonic() + 0.5, False)
            pids = [os.getpid()] + [h.actor.process.pid for h in pipeline.shards.values()]
            cpu0, wall0, skipped0 = cpu_seconds(pids), time.monotonic(), skipped()
            await receive(wall0 + seconds, True)
            cpu, wall = cpu_seconds(pids) - cpu0, time.monotonic() - wall0
            await asyncio.sleep(0.3)  # the counters of the last drain
            result["skipped"] = skipped() - skipped0
        stop.set()
        await server
        lat = np.array(latencies)
        return result | {"streams": n, "windows": len(lat), "late": int(np.sum(lat > 1000 * LATE_SECONDS)),
                "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
                "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
                "cpu_percent": 100 * cpu / wall, "cpu_ms_per_stream_second": 1000 * cpu / wall / n,
                "restarts": sum(pipeline.metrics.registry.get_sample_value("streamgenre_shard_restarts_total", {"shard": str(i)})
                                or 0 for i in pipeline.shards)}

    try:
        return asyncio.run(main())
    finally:
        pipeline.stop()


def compare_workers(args) -> None:
    """Each stream count in one process and over worker processes, in one run: one line each."""
    print(f"model {args.model}; machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"every {args.every}; {'a busy loop on one core' if args.hog else 'no hog'}")
    print(f"{'streams':>7} {'workers':>7} {'windows':>7} {'late':>5} {'skipped':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'CPU %':>6} {'CPU ms/stream/s':>15}")
    single = None
    for n in args.streams:
        for content in args.content:
            for workers in args.workers:
                if workers == 1:
                    if single is None:
                        limit_blas_threads()
                        model = load_model(args.model)
                        single = (model, create_frontend(args.frontend, model.params),
                                  create_engine(model, args.engine, args.threads), music(model.params.sample_rate))
                    model, frontend, engine, audio = single
                    stage = create_content_stage(content, args.engine, model.params.step_seconds,
                                                 args.content_patches, threads=args.threads)
                    r = run(n, args.seconds, audio, model, frontend, engine, None, False, stage, args.every)
                else:
                    r = run_workers(n, args.seconds, args.model, workers, args.every, content)
                print(f"{r['streams']:7d} {workers:7d} {r['windows']:7d} {r['late']:5d} {r['skipped']:7d} "
                      f"{r['p50_ms']:7.1f} {r['p99_ms']:7.1f} {r['cpu_percent']:6.0f} "
                      f"{r['cpu_ms_per_stream_second']:15.2f}  content {content}", flush=True)
    print(f"late: sent more than {LATE_SECONDS} s after the window's last sample arrived; skipped: windows a stream "
          f"skipped to catch up")


def hog() -> None:
    """A busy loop, for ever: one core taken, as another service on a radio server would."""
    while True:
        pass


def run(n: int, seconds: float, audio: np.ndarray, model, frontend, engine, history: str | None = None,
        whole: bool = False, content=None, every: int = 1) -> dict:
    timed = Timed(frontend, engine, whole)
    sources = [FedSource(f"s{i}", model.params.sample_rate) for i in range(n)]
    streams = [Stream(s, "last:10", params=model.params, every=every) for s in sources]
    broadcaster = Broadcaster(lambda: {"type": "hello"})
    recorder = None

    def publish(message: dict) -> None:
        broadcaster.publish(message)
        if recorder:
            recorder.observe(message)

    pipeline = Pipeline(streams, timed, timed, model.genres, publish, content=TimedContent(content, timed))
    if history:
        recorder = Recorder(history, model.params.step_seconds, pipeline.metrics.registry)
        recorder.start()
    received = 0

    async def main():
        nonlocal received
        stop = asyncio.Event()
        server = asyncio.create_task(serve(pipeline, broadcaster, Access("127.0.0.1"), 8799, stop))
        await asyncio.sleep(0.5)
        stop_feed = threading.Event()
        threading.Thread(target=feed, args=(sources, audio, model.params, stop_feed), daemon=True).start()
        async with connect("ws://127.0.0.1:8799", max_queue=None) as ws:
            warm_until = time.monotonic() + 30
            while min(s.seq for s in streams) < WARM_WINDOWS and time.monotonic() < warm_until:
                await asyncio.sleep(0.1)  # warm-up: every stream past its first windows, the start-up burst over
            pipeline.latencies.clear()
            for s in streams:
                s.late = 0
            calls0 = pipeline.metrics.registry.get_sample_value("streamgenre_engine_batch_size_count")
            cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            windows0, skipped0 = sum(s.seq for s in streams), sum(s.skipped for s in streams)
            timed.seconds = dict.fromkeys(timed.seconds, 0.0)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                    received += json.loads(raw)["type"] == "prediction"
                except asyncio.TimeoutError:
                    pass
            cpu1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        stop_feed.set()
        stop.set()
        await server
        if recorder:
            recorder.stop()
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        lat = np.array(pipeline.latencies) * 1000
        calls = pipeline.metrics.registry.get_sample_value("streamgenre_engine_batch_size_count") - calls0
        windows = sum(s.seq for s in streams) - windows0
        return {
            "streams": n, "windows": windows, "received": received, "cnn": "whole" if whole else "columns",
            "frontend_ms": 1000 * timed.seconds["frontend"] / max(windows, 1),
            "engine_ms": 1000 * timed.seconds["engine"] / max(windows, 1),
            "content_ms": 1000 * timed.seconds["content"] / max(windows, 1), "content": content.description,
            "late": sum(s.late for s in streams), "skipped": sum(s.skipped for s in streams) - skipped0,
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
            "cpu_percent": 100 * cpu / (wall1 - wall0), "cpu_ms_per_stream_second": 1000 * cpu / (wall1 - wall0) / n,
            "mean_batch": windows / max(calls, 1),
            "overwritten": sum(s.source.ring.overwritten for s in streams),
            "history": "on" if recorder else "off",
            "history_rows": pipeline.metrics.registry.get_sample_value("streamgenre_history_rows_written_total"),
            "history_errors": recorder.error if recorder else None,
        }

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="paper", help="paper, musicnn or an ONNX file")
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 250, 500, 750])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--engine", default="auto", help="auto, tensorrt or onnx")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime's threads (0: one per core)")
    parser.add_argument("--frontend", default="auto", help="auto, gpu or cpu")
    parser.add_argument("--history", help="also run each count with the genre log written here")
    parser.add_argument("--whole", action="store_true", help="also run each count computing every window whole")
    parser.add_argument("--content", nargs="+", default=["on"], choices=["on", "off"],
                        help="run each count with the content stage on, off, or both")
    parser.add_argument("--content-patches", type=int, default=PATCHES_PER_STEP, help="the content stage's patches "
                        "a window step")
    parser.add_argument("--every", type=int, default=1, help="classify every Nth window step of each stream")
    parser.add_argument("--hog", action="store_true", help="a busy loop holds one core during the runs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="worker processes (1: the streams in "
                        "this one); several, as 1 2, each stream count with each, in one run")
    args = parser.parse_args()
    if args.hog:
        import multiprocessing

        multiprocessing.Process(target=hog, daemon=True).start()
    if args.workers != [1]:
        compare_workers(args)
        return
    limit_blas_threads()  # as the CLI does
    model = load_model(args.model)
    frontend, engine = create_frontend(args.frontend, model.params), create_engine(model, args.engine, args.threads)
    audio = music(model.params.sample_rate)
    print(f"model {model.name}; machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{engine.description}; "
          f"frontend: {frontend.description}; every {args.every}; {'a busy loop on one core' if args.hog else 'no hog'}")
    print(f"{'streams':>7} {'cnn':>7} {'history':>7} {'windows':>7} {'late':>5} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'CPU %':>6} {'CPU ms/stream/s':>15} {'frontend ms/w':>13} {'engine ms/w':>11} {'content ms/w':>12} "
          f"{'batch':>6} {'lost':>6} {'rows':>6}")
    stages = {c: create_content_stage(c, args.engine, model.params.step_seconds, args.content_patches,
                                      threads=args.threads)
              for c in args.content}
    for stage in stages.values():
        print(stage.description)
    for n in args.streams:
        for history in [None, args.history] if args.history else [None]:
            for whole in [True, False] if args.whole else [False]:
                for content, stage in stages.items():
                    r = run(n, args.seconds, audio, model, frontend, engine, history, whole, stage, args.every)
                    print(f"{r['streams']:7d} {r['cnn']:>7} {r['history']:>7} {r['windows']:7d} {r['late']:5d} "
                          f"{r['p50_ms']:7.1f} {r['p99_ms']:7.1f} {r['cpu_percent']:6.0f} "
                          f"{r['cpu_ms_per_stream_second']:15.2f} {r['frontend_ms']:13.3f} {r['engine_ms']:11.3f} "
                          f"{r['content_ms']:12.3f} {r['mean_batch']:6.1f} {r['overwritten']:6d} "
                          f"{r['history_rows'] or 0:6.0f}  content {content}", flush=True)
                    if r["history_errors"]:
                        print(f"history error: {r['history_errors']}")
    print(f"late: sent more than {LATE_SECONDS} s after the window's last sample arrived")


if __name__ == "__main__":
    main()
