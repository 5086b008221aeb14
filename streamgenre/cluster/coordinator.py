"""The sharded daemon's coordinator: the configured streams cut into shards (shard.py), each run by a backend
(worker processes on this machine, process_shards.py, or Ray actors, ray_shards.py), and their messages served as
one daemon's.

`ClusterPipeline` stands where the single process has its `Pipeline`: the server, `/metrics`, `/healthz` and the
genre log see the same streams, messages and counters. One thread per shard drains it every POLL_SECONDS, so a shard
that is down never delays the others; its streams are reported interrupted (status messages, `/healthz`) until each
sends a window again, then resumed, with how long they were out. Streams go to shards of at most `shard_size` (Ray:
more shards as streams are added) or over a fixed number of `shards` (worker processes: the least loaded). By
default (`shard_cpus = "auto"`) each Ray shard asks for the share of the cluster's CPUs that lets every shard be
placed (at most 1); a shard Ray cannot place is reported as waiting for resources, with what it needs and what is
free.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..metrics import STREAM_COUNTERS, Metrics
from ..pipeline import status_message
from ..sources import split_spec

POLL_SECONDS = 0.1  # how often each shard is drained: the delay clustering adds to a message, at most
STATE_SECONDS = 1.0  # how often a drain brings every stream's state and counters too: at every drain, they cost the
# shards and the coordinator more than the messages (400 streams: 4,000 states a second)
DOWN_AFTER = 1.5  # a shard whose drain has not answered for this long is reported down (a drain takes milliseconds)
HEALTHY_SECONDS = 10.0
START_SECONDS = 60.0  # a new shard's process may take this long to load its model before it is reported down

log = logging.getLogger("streamgenre.cluster")


def shard_settings(settings: dict, realtime: bool) -> dict:
    """What every shard needs of the daemon's settings to run today's pipeline; `cpus` is a number or "auto"
    (ClusterPipeline works it out from the cluster it finds)."""
    keys = ("model", "engine", "frontend", "fp16", "average", "silence_db", "dead_air_seconds", "content",
            "content_patches", "content_switch", "every", "loop")
    cpus = settings["shard_cpus"]
    if cpus != "auto" and (type(cpus) not in (int, float) or not 0 < cpus <= 1024):
        raise ValueError(f"shard_cpus {cpus!r}: \"auto\" or the CPUs each shard asks Ray for (above 0)")
    return {k: settings[k] for k in keys} | {"realtime": realtime, "cpus": cpus}


class RemoteSource:
    """What the hello message says of a stream's source; updated from its shard."""

    def __init__(self, kind: str):
        self.kind, self.error, self.finished = kind, None, False


class RemoteStream:
    """A stream served by a shard, as the server, the metrics and the genre log see it."""

    def __init__(self, spec: str):
        self.name, kind, _ = split_spec(spec)
        self.spec = spec
        self.source = RemoteSource(kind)
        self.shard: int | None = None
        self.last: dict | None = None
        self.state_problem: str | None = None
        self.state_counters = {key: 0 for _, _, key in STREAM_COUNTERS}
        self.down_since: float | None = None
        self.down_why = ""
        self.interrupted_seconds = 0.0
        self.state_dead_air = 0.0

    def dead_air_length(self) -> float:
        return self.state_dead_air

    def problem(self) -> str | None:
        if self.down_since is not None:
            return f"interrupted: {self.down_why} ({time.monotonic() - self.down_since:.0f} s so far)"
        return self.state_problem

    def counters(self) -> dict:
        return self.state_counters


class ShardHandle:
    def __init__(self, index: int, specs: list[str], actor):
        self.index, self.specs, self.actor = index, specs, actor
        self.incarnation: str | None = None
        self.pid: int | None = None
        self.node = ""
        self.created = self.last_answer = time.monotonic()
        self.down_since: float | None = None
        self.gone = threading.Event()  # the shard was removed (no streams left)
        self.why = ""  # why it is down
        self.waiting = False  # Ray has not placed it: not enough free resources
        self.thread: threading.Thread | None = None


class ClusterPipeline:
    """The streams of `specs` over shards run by `backend` (ProcessShards or RayShards): shards of at most
    `shard_size` streams, or a fixed number of `shards`; messages to `publish`."""

    def __init__(self, backend, specs: list[str], settings: dict, publish, shard_size: int | None = None,
                 shards: int | None = None):
        self.backend, self.shard_size, self.shard_count, self.publish = backend, shard_size, shards, publish
        self.metrics = Metrics()
        self.restarts = Counter("streamgenre_shard_restarts", "Shards restarted (their streams were interrupted)",
                                ["shard"], registry=self.metrics.registry)
        self.metrics.registry.register(_ShardCollector(self))
        self.streams: list[RemoteStream] = []
        self.shards: dict[int, ShardHandle] = {}
        self.settings = backend.fit(settings, shards or math.ceil(len(specs) / shard_size))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = False
        self.reconfigure(specs)
        backend.stop_leftovers(set(self.shards))
        size = f"{shards} shards" if shards else f"{len(self.shards)} shards of up to {shard_size} streams"
        self.description = f"{size}, {backend.describe(self.settings)}"

    # --- placing streams on shards ---

    def reconfigure(self, specs: list[str]) -> None:
        """Serve `specs` (at start and at each reload): streams already served stay on their shard uninterrupted,
        removed ones stop, new ones go to a shard with room, or to a new shard."""
        with self._lock:
            kept = {s.spec: s for s in self.streams}
            streams = [kept.get(spec) or RemoteStream(spec) for spec in specs]
            for stream in streams:
                if stream.shard is None:
                    stream.shard = self._shard_with_room(streams)
            for gone in (s for s in self.streams if s.spec not in set(specs)):
                if not any(x.shard == gone.shard for x in streams):  # its shard stops: no status comes from it
                    self.publish(status_message(gone, "removed", f"{gone.name}: removed by a reload"))
            self.streams[:] = streams  # in place: the server and the metrics read this list
            for index in sorted({s.shard for s in streams} | set(self.shards)):
                self._apply(index, [s.spec for s in streams if s.shard == index])

    def _shard_with_room(self, streams: list[RemoteStream]) -> int:
        """The least loaded of a fixed number of shards; else the first with room, or a new one."""
        load: dict[int, int] = {}
        for s in streams:
            if s.shard is not None:
                load[s.shard] = load.get(s.shard, 0) + 1
        if self.shard_count:
            return min(range(self.shard_count), key=lambda i: (load.get(i, 0), i))
        return next((i for i in sorted(load) if load[i] < self.shard_size),
                    next(i for i in range(len(load) + 1) if i not in load))

    def _apply(self, index: int, specs: list[str]) -> None:
        handle = self.shards.get(index)
        if handle is None:
            handle = self.shards[index] = ShardHandle(index, specs, self.backend.start(index, self.settings, specs))
            if self._started:
                self._watch(handle)
        elif not specs:
            handle.gone.set()
            self.backend.kill(handle.actor)
            del self.shards[index]
        elif specs != handle.specs:
            handle.specs = specs
            self.backend.configure(handle.actor, specs)

    # --- what the server calls ---

    def start(self) -> None:
        self._started = True
        for handle in list(self.shards.values()):
            self._watch(handle)

    def stop(self) -> None:
        """A clean stop: the shards stop too (after a crash they run on, for the restarted coordinator to find)."""
        self._stop.set()
        for handle in list(self.shards.values()):
            if handle.thread:
                handle.thread.join(timeout=DOWN_AFTER + 1)
            self.backend.kill(handle.actor)
        self.backend.shutdown()

    @property
    def alive(self) -> bool:
        return not self._stop.is_set() and any(time.monotonic() - h.last_answer < HEALTHY_SECONDS
                                               for h in self.shards.values())

    def problem(self) -> str | None:
        down = [h for h in self.shards.values() if h.down_since is not None]
        return f"cluster: {'; '.join(h.why for h in down)}" if down else None

    def _unplaced(self, handle: ShardHandle) -> str | None:
        """Why a shard that never answered has not been placed (Ray: not enough free CPUs), or None."""
        if handle.incarnation is not None or not (why := self.backend.unplaced(self.settings)):
            return None
        return f"shard {handle.index} waiting for resources: {why}"

    # --- draining the shards ---

    def _watch(self, handle: ShardHandle) -> None:
        handle.thread = threading.Thread(target=self._drain_loop, args=(handle,), name=f"shard-{handle.index}",
                                         daemon=True)
        handle.thread.start()

    def _drain_loop(self, handle: ShardHandle) -> None:
        """Drain the shard every POLL_SECONDS. A drain that does not answer is waited for, never abandoned (a
        second call would queue behind it, and the messages it returns would be lost)."""
        pending, asked, stated = None, 0.0, -STATE_SECONDS
        while not (self._stop.is_set() or handle.gone.is_set()):
            started = time.monotonic()
            if pending is None:
                states = started - stated >= STATE_SECONDS
                pending, asked = self.backend.drain(handle.actor, states), started
                stated = started if states else stated
            if pending.ready(POLL_SECONDS):
                try:
                    report = pending.result()
                except Exception as e:  # the shard's process died, or its node: it is restarted
                    if not (self._stop.is_set() or handle.gone.is_set()):
                        self._down(handle, f"shard {handle.index} {_reason(e)}")
                else:
                    self._up(handle, report)
                pending = None
            elif time.monotonic() - asked > DOWN_AFTER:
                handle.waiting = bool(why := self._unplaced(handle))
                if why or not self._starting(handle):
                    self._down(handle, why or f"shard {handle.index} does not answer")
            self._stop.wait(max(0.0, POLL_SECONDS - (time.monotonic() - started)))

    def _starting(self, handle: ShardHandle) -> bool:
        """A shard that has never answered, started less than START_SECONDS ago: loading, not down."""
        return handle.incarnation is None and time.monotonic() - handle.created < START_SECONDS

    def _down(self, handle: ShardHandle, why: str, since: float | None = None) -> None:
        """The shard is down (since `since`, else now): its streams are interrupted until each sends a window."""
        if handle.down_since is not None:
            return
        handle.down_since, handle.why = since or time.monotonic(), why
        log.warning("%s: its streams are interrupted", why)
        for stream in self._streams_of(handle):
            stream.down_since, stream.down_why = handle.down_since, why
            self.publish(status_message(stream, "interrupted", f"{stream.name}: interrupted: {why}"))

    def _up(self, handle: ShardHandle, report: dict) -> None:
        if handle.incarnation not in (None, report["incarnation"]):  # restarted: its constructor ran again
            self.restarts.labels(str(handle.index)).inc()
            self.backend.configure(handle.actor, handle.specs)  # it began with older streams: bring it up to date
            self._down(handle, f"shard {handle.index} restarted", since=handle.last_answer)
        handle.waiting = False
        if handle.down_since is not None:
            log.info("shard %d is back (pid %d on %s) after %.1f s", handle.index, report["pid"], report["node"],
                     time.monotonic() - handle.down_since)
        handle.incarnation, handle.pid, handle.node = report["incarnation"], report["pid"], report["node"]
        handle.last_answer, handle.down_since = time.monotonic(), None
        by_name = {s.name: s for s in self._streams_of(handle)}
        for name, state in report["streams"].items():
            if stream := by_name.get(name):
                stream.source.kind, stream.source.error = state["kind"], state["error"]
                stream.source.finished = state["finished"]
                stream.state_problem, stream.state_counters = state["problem"], state["counters"]
                stream.state_dead_air = state["dead_air_length"]
                if state["problem"]:  # a source that delivers nothing sends no window: its own problem says so
                    self._resume(stream, handle)
        for message in report["messages"]:
            if message["type"] == "prediction" and (stream := by_name.get(message["stream"])):
                self._resume(stream, handle)
                stream.last = message
            self.publish(message)

    def _resume(self, stream: RemoteStream, handle: ShardHandle) -> None:
        if stream.down_since is None:
            return
        out = time.monotonic() - stream.down_since
        stream.down_since, stream.interrupted_seconds = None, stream.interrupted_seconds + out
        self.publish(status_message(stream, "resumed", f"{stream.name}: resumed after {out:.1f} s "
                                    f"(shard {handle.index}, pid {handle.pid} on {handle.node})"))

    def _streams_of(self, handle: ShardHandle) -> list[RemoteStream]:
        return [s for s in self.streams if s.shard == handle.index]


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"is down ({type(error).__name__}{': ' + text[0][:120] if text else ''})"


class _ShardCollector:
    """Per shard: its process and node, its streams; per stream: how long it was interrupted."""

    def __init__(self, cluster: ClusterPipeline):
        self.cluster = cluster

    def collect(self):
        up = GaugeMetricFamily("streamgenre_shard_up", "1 while the shard answers; its process and node as labels",
                               labels=["shard", "pid", "node"])
        streams = GaugeMetricFamily("streamgenre_shard_streams", "Streams on the shard", labels=["shard"])
        waiting = GaugeMetricFamily("streamgenre_shard_waiting_for_resources", "1 while Ray cannot place the shard "
                                    "(not enough free CPUs or GPUs)", labels=["shard"])
        for h in list(self.cluster.shards.values()):
            up.add_metric([str(h.index), str(h.pid or ""), h.node], 0 if h.down_since is not None else 1)
            streams.add_metric([str(h.index)], len(h.specs))
            waiting.add_metric([str(h.index)], 1 if h.waiting else 0)
        interrupted = CounterMetricFamily("streamgenre_stream_interrupted_seconds", "Time the stream's shard was "
                                          "down", labels=["stream"])
        for s in list(self.cluster.streams):
            interrupted.add_metric([s.name], s.interrupted_seconds)
        yield from (up, streams, waiting, interrupted)
