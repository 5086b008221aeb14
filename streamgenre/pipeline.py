"""Streams, batching and running averages: from ring buffers to prediction messages.

One thread polls every stream. A stream is read only once its ring holds enough audio for its next window, cut into
steps of the model's step_frames frames; the steps of all streams ready in one tick go through the frontend as one
batch (on the CPU or the GPU), and through the content stage's features (content_stage.py). A second thread takes
the windows they complete through the content network and the genre engine, each as one batch, and makes each
result a message for the broadcast: the frontend of the next tick runs while the engines work on this one, so both
cores stay busy. A window is music, speech, noise or silence before anything else; only music names a genre and
moves the running average.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .audio import AudioError, Resampler, ac_level_db
from .backends import Engine
from .content import SILENCE
from .content_stage import Content, LevelOnly
from .frontend import PAPER, Frontend, FrontendParams
from .metrics import Metrics
from .model import named_probabilities
from .sources import BrokenSource, Source, parse_source, split_spec

RELEASE_AFTER_SECONDS = 5.0  # after a reload removed streams: their threads have ended by then
LATE_SECONDS = 0.5  # a window sent later than this after its last sample arrived is late
CATCH_UP_STEPS = 3  # a live stream with this many steps waiting in one poll skips to its latest window: a late tick
# catches up instead of pushing every later window late (the skipped windows are counted)
STALE_SECONDS = 5.0  # a source silent for longer than this is not delivering audio
TICK_SECONDS = 0.1  # longer ticks batch more windows per engine call, at ~50 ms more latency on average
HEALTHY_SECONDS = 10.0  # a pipeline without a good tick for this long is not working (healthz, watchdog)
SILENCE_DB = -50.0  # a window whose audio (DC removed) stays below this level is dead air, not music
DEAD_AIR_SECONDS = 10.0  # dead air for this long is a problem (healthz)

log = logging.getLogger("streamgenre.pipeline")


class Average:
    """Running average of a stream's window probabilities: `last:N`, `ema:SECONDS` (half-life) or `all`, for windows
    every `step_seconds`. A stream classified on every `every`th step only (`--every`) averages over the same
    seconds: `last:N` keeps N/every windows (rounded up), and the half-life stays in seconds."""

    def __init__(self, spec: str = "last:10", step_seconds: float = PAPER.step_seconds, every: int = 1):
        kind, _, arg = spec.partition(":")
        try:
            if kind == "last" and int(arg) >= 1:
                self._recent: collections.deque | None = collections.deque(maxlen=-(-int(arg) // every))
            elif kind == "ema" and float(arg) > 0:
                self._recent, self._keep = None, 0.5 ** (every * step_seconds / float(arg))
            elif kind == "all" and not arg:
                self._recent, self._keep = None, None
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"--average {spec!r}: use last:N (N >= 1), ema:SECONDS or all") from None
        self.spec = spec
        self.value: np.ndarray | None = None
        self._count = 0

    def restart(self) -> None:
        """Forget every window so far: a new song starts its own average."""
        self.value, self._count = None, 0
        if self._recent is not None:
            self._recent.clear()

    def update(self, probs: np.ndarray) -> np.ndarray:
        self._count += 1
        if self._recent is not None:
            self._recent.append(probs)
            self.value = np.mean(self._recent, axis=0)
        elif self.value is None:
            self.value = probs.copy()
        elif self._keep is None:
            self.value += (probs - self.value) / self._count
        else:
            self.value = self._keep * self.value + (1 - self._keep) * probs
        return self.value


class Step(NamedTuple):
    """A step of frames of one stream, as Stream.poll cuts them."""

    audio: np.ndarray  # the samples of its frames
    completes: bool  # whether it completes a window to classify (a first step only starts one; --every skips some)
    number: int  # of steps of the stream so far: the number of the window it completes
    stream_time: float  # at its end, in seconds of the stream
    arrived: float  # arrival time (monotonic) of its last sample; by the audio's clock for a file read fast
    level: float  # of the window it completes, dBFS


class Stream:
    """One named source with its resampler, running average and counters, cutting its audio into steps of frames
    of the model's frontend."""

    def __init__(self, source: Source, average: str, silence_db: float = SILENCE_DB,
                 dead_air_seconds: float = DEAD_AIR_SECONDS, params: FrontendParams = PAPER, every: int = 1):
        self.source = source
        self.every = every  # classified on every `every`th window step only (--every)
        self.params = params
        self.name = source.name
        self.spec: str | None = None  # the source spec it was made from, which a reload compares
        self.created = time.monotonic()  # a source that has not delivered yet has STALE_SECONDS from here
        self.resample = Resampler(source.rate, to_rate=params.sample_rate) if source.rate != params.sample_rate else None
        self.average = Average(average, params.step_seconds, every)
        self.averaged_title: str | None = None  # the ICY title the running average belongs to
        self.restart_average = False  # set by dead air: the music after it starts a new average
        self.seq = 0
        self.steps = 0  # steps of frames cut since the start
        self.samples_in = 0  # samples at the model's rate read from the source
        self._pending = np.zeros(0, np.float32)  # those from the start of the next step on
        self.late = 0
        self.skipped = 0  # windows skipped to catch up (CATCH_UP_STEPS)
        self.reported_skip = False  # the first skip is a status message; the counter says the rest
        self.invalid = 0  # windows whose probabilities were not finite numbers (not sent)
        self.level_db = -120.0  # RMS of the audio last read, dBFS
        self.last = None  # the latest prediction message
        self.silence_db, self.dead_air_seconds = silence_db, dead_air_seconds
        self._step_level = -120.0  # of the previous step: a window is two steps
        self.dead_air_since: float | None = None  # arrival time of the first window of the current dead air
        self.content_track = None  # its state in the pipeline's content stage, made there on its first step
        self.clock_start: float | None = None  # when its audio was first read: the audio's clock, for a file read
        # faster than real time (--fast), whose windows are late only where the pipeline falls behind that clock

    def _needed(self) -> int:
        """Samples (at the source's rate) still missing for the next window: two steps for the first one."""
        params = self.params
        missing = params.step_span_samples + (params.step_samples if self.steps == 0 else 0) - len(self._pending)
        return int(missing * self.source.rate / params.sample_rate) + 1

    @property
    def exhausted(self) -> bool:
        """The source has ended and what is left in its ring cannot complete another window."""
        return self.source.finished and self.source.ring.available < self._needed()

    def poll(self) -> list[Step]:
        """Each step of frames that the audio now in the ring completes."""
        ring = self.source.ring
        if ring.available < self._needed():
            return []
        audio = ring.read_all()
        if not len(audio):
            return []
        self.clock_start = self.clock_start or time.monotonic()
        self.level_db = float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-12))
        converted = self.resample(audio) if self.resample else audio
        self.samples_in += len(converted)
        pending, start, out, params = np.concatenate([self._pending, converted]), 0, [], self.params
        waiting = (len(pending) - params.step_span_samples) // params.step_samples + 1
        restart_at = None  # the step whose window would join audio that is not adjacent: it only starts one
        if self.source.paced and self.steps > 0 and waiting >= CATCH_UP_STEPS:
            skip = waiting - 2  # the last two steps: one to start a window, one to complete it
            start, self.steps, self.skipped = skip * params.step_samples, self.steps + skip, self.skipped + skip
            restart_at = self.steps + 1
        while len(pending) - start >= params.step_span_samples:
            self.steps += 1
            end_sample = (self.steps * params.step_frames - 1) * params.hop_length + params.n_fft  # like samples_in
            behind = int((self.samples_in - end_sample) * self.source.rate / params.sample_rate)  # newer samples read
            span = pending[start : start + params.step_span_samples]
            level, self._step_level = self._step_level, ac_level_db(span)
            stream_time = end_sample / params.sample_rate
            arrived = ring.arrival_time(ring.read - behind) if self.source.paced else \
                self.clock_start + stream_time  # when it would have arrived live: late only behind real time
            classified = self.steps > 1 and (self.steps - 2) % self.every == 0 and self.steps != restart_at
            # the first window, then every Nth
            out.append(Step(span, classified, self.steps, stream_time, arrived, max(level, self._step_level)))
            start += params.step_samples
        self._pending = pending[start:]
        return out

    def problem(self) -> str | None:
        """Why this stream is not delivering audio now, or None while it is."""
        source = self.source
        if source.error:
            return source.error
        if source.finished:
            return None if source.kind == "file" else "ended"  # a file played to its end is not a failure
        heard = source.ring.arrival_time(source.ring.written) if source.ring.written else self.created
        if time.monotonic() - heard > STALE_SECONDS:
            return f"no audio in the last {STALE_SECONDS:.0f} s"
        if self.dead_air_since is not None and (length := self.dead_air_length()) >= self.dead_air_seconds:
            return f"dead air (below {self.silence_db:.0f} dBFS) for {length:.0f} s"
        return None

    def dead_air_length(self) -> float:
        """How long the current dead air has lasted (0 while there is sound)."""
        return 0.0 if self.dead_air_since is None else max(0.0, time.monotonic() - self.dead_air_since)

    def counters(self) -> dict:
        ring = self.source.ring
        return {"samples_written": ring.written, "samples_read": ring.read, "samples_overwritten": ring.overwritten,
                "overflows": self.source.overflows, "reconnects": self.source.reconnects, "windows": self.seq,
                "late_windows": self.late, "skipped_windows": self.skipped, "replaced_samples": self.source.replaced_samples,
                "skipped_packets": self.source.skipped_packets, "invalid_windows": self.invalid}


def trim_heap() -> None:
    """glibc's malloc keeps freed memory for reuse: hand what is free back to the system (a no-op elsewhere)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def status_message(stream, event: str, message: str) -> dict:
    """A `status` message (docs/protocol.md) about a stream: anything with a name and counters()."""
    return {"type": "status", "stream": stream.name, "event": event, "message": message,
            "counters": stream.counters()}


def stream_from_spec(spec: str, average: str, realtime: bool, silence_db: float, dead_air_seconds: float,
                     params: FrontendParams, loop: bool = False, every: int = 1) -> Stream:
    """The stream of one source spec for a model's frontend `params` (files looping with `loop`, classified on
    every `every`th step); a source that cannot open becomes a broken stream that reports its error."""
    try:
        source = parse_source(spec, realtime, params.sample_rate, loop)
    except AudioError as e:
        source = BrokenSource(split_spec(spec)[0], str(e))
    stream = Stream(source, average, float(silence_db), float(dead_air_seconds), params, every)
    stream.spec = spec
    return stream


def reloaded_streams(current: list[Stream], specs: list[str], make: Callable[[str], Stream]) -> list[Stream]:
    """The streams after a reload: a stream whose spec is unchanged is kept (the same object, uninterrupted), the
    others are made anew by `make`."""
    kept = {s.spec: s for s in current}
    return [kept.get(spec) or make(spec) for spec in specs]


class Pipeline:
    """Polls all streams, batches their ready steps through the frontend and their windows through the engine, and
    publishes one message per window."""

    def __init__(self, streams: list[Stream], frontend: Frontend, engine: Engine, genres: tuple[str, ...],
                 publish: Callable[[dict], None], tick: float = TICK_SECONDS, content=None):
        self.streams = streams
        self.content = content or LevelOnly()  # a ContentStage, or the level alone where the stage is off
        self.frontend = frontend
        frontend.open_streams(len(streams))
        self.engine = engine
        self.genres = genres
        self.publish = publish
        self.tick = tick
        self.metrics = Metrics()
        self.latencies: collections.deque[float] = collections.deque(maxlen=100_000)  # recent, in seconds
        self._reported_loss: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine_thread: threading.Thread | None = None
        self._batches: queue.Queue = queue.Queue(maxsize=1)  # windows for the engine thread; full: the poller waits
        self.last_tick = time.monotonic()  # of the last tick that went through
        self.error: str | None = None  # why the last tick failed; None once one goes through
        self.engine_error: str | None = None  # why the engine's last batch failed; None once one goes through
        self._replacement: list[Stream] | None = None  # the streams to serve from the next tick on (a reload)
        self._release_at: float | None = None  # when to give back the memory of streams a reload removed
        frontend.prepare()  # its files are read now: a tick must not be the first to need a file descriptor

    @property
    def alive(self) -> bool:
        """The polling thread runs and a tick went through in the last HEALTHY_SECONDS (what the systemd watchdog
        vouches for: one failed tick among good ones is reported by /healthz, but is no reason for a restart)."""
        return self._running() and time.monotonic() - self.last_tick < HEALTHY_SECONDS

    def _running(self) -> bool:
        return all(t and t.is_alive() for t in (self._thread, self._engine_thread))

    def problem(self) -> str | None:
        """Why the pipeline is not classifying now, or None while it is."""
        if not self._running():
            return "pipeline: not running"
        if self.error or self.engine_error:
            return f"pipeline: {self.error or self.engine_error}"
        if time.monotonic() - self.last_tick > HEALTHY_SECONDS:
            return f"pipeline: no tick in the last {HEALTHY_SECONDS:.0f} s"
        return None

    def start(self) -> None:
        for stream in self.streams:
            stream.source.start()
        self._engine_thread = threading.Thread(target=self._infer_loop, name="engine", daemon=True)
        self._engine_thread.start()
        self._thread = threading.Thread(target=self._loop, name="pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for stream in self.streams:
            stream.source.stop()
        for thread in (self._thread, self._engine_thread):
            if thread:
                thread.join(timeout=5)

    def replace_streams(self, streams: list[Stream]) -> None:
        """Serve `streams` from the next tick on (any thread): the ones already served (the same objects) go on
        uninterrupted, new ones start, the others stop."""
        self._replacement = streams

    def _apply_replacement(self) -> None:
        new, self._replacement = self._replacement, None
        if new is None:
            return
        old = list(self.streams)
        self.frontend.reorder([next((k for k, o in enumerate(old) if o is s), None) for s in new])
        for stream in old:
            if not any(stream is s for s in new):
                stream.source.stop()
                self.publish(status_message(stream, "removed", f"{stream.name}: removed by a reload"))
        for stream in new:
            if not any(stream is o for o in old):
                stream.source.start()
                self.publish(status_message(stream, "added", f"{stream.name}: added by a reload"))
        self.streams[:] = new  # in place: the metrics and the server read this list
        if len(new) < len(old):
            self._release_at = time.monotonic() + RELEASE_AFTER_SECONDS

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._apply_replacement()
                self.step()
            except Exception as e:  # one tick's failure must never end the pipeline: report it, count it, go on
                self.error = self._failed(e)
            else:
                self.error, self.last_tick = None, time.monotonic()
            if self._release_at and time.monotonic() > self._release_at:
                self._release_memory()
            self._stop.wait(max(0.0, self.tick - (time.monotonic() - started)))

    def _release_memory(self) -> None:
        """After a reload removed streams (and their threads have ended): the engines' arenas and the C heap give
        back what the larger set grew. Without it, RSS stayed at 665 MB after cycles between 63 and 3 streams
        (207 MB before the first); with it, it returns to within a few MB of that."""
        self._release_at = None
        self.engine.release_memory()
        self.content.release_memory()
        gc.collect()
        trim_heap()

    def _failed(self, error: Exception) -> str:
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        self.metrics.tick_errors.inc()
        log.error("a tick failed (its windows are lost): %s", reason)
        return reason

    def step(self) -> int:
        """One tick: read, batch through the frontend, and hand the windows to the engine thread (waiting while it
        still has the previous tick's). Returns the number of windows handed over."""
        steps, ids, patches = [], [], []
        for i, stream in enumerate(self.streams):
            self._forward_events(stream)
            for step in stream.poll():
                steps.append((stream, step))
                ids.append(i)
                patches.append(self.content.cut(stream, step.audio[: stream.params.step_samples]))
        if not steps:
            return 0
        windows = self.frontend.stream_windows(ids, np.stack([step.audio for _, step in steps]))
        complete = [i for i, (_, step) in enumerate(steps) if step.completes]
        if not complete:
            return 0
        if len(complete) < len(steps):  # a stream's first step only starts its first window
            windows, steps = windows[self.frontend.xp.asarray(complete)], [steps[i] for i in complete]
            patches = [patches[i] for i in complete]
        content_input = self.content.features(patches)
        while not self._stop.is_set():
            try:
                self._batches.put((windows, steps, content_input), timeout=0.5)
                break
            except queue.Full:
                continue
        return len(steps)

    def _infer_loop(self) -> None:
        """The engine thread: each batch through the engine, each result a message."""
        while not self._stop.is_set():
            try:
                windows, steps, content_input = self._batches.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._infer(windows, steps, content_input)
            except Exception as e:  # as for a tick: reported, counted, and the next batch goes on
                self.engine_error = self._failed(e)
            else:
                self.engine_error = None

    def _infer(self, windows, steps: list[tuple[Stream, Step]], content_input) -> None:
        kinds = self.content.score(content_input, len(steps))
        probs = self.engine.infer(windows, [(stream, step.number) for stream, step in steps])
        self.metrics.batch_size.observe(len(steps))
        for (stream, step), p, k in zip(steps, probs, kinds):
            content = self.content.decide(stream, k, step.level)
            self._send_prediction(stream, p, content, step.stream_time, step.arrived, step.level)

    def _send_prediction(self, stream: Stream, probs: np.ndarray, content: Content, stream_time: float,
                         arrived: float, level: float) -> None:
        """A prediction message; a genre only for music (the running average waits while there is none)."""
        if not np.isfinite(probs).all():  # a broken model: never a non-finite number to clients or the average
            stream.invalid += 1
            log.error("%s: the model gave non-finite probabilities; window not sent", stream.name)
            return
        if content.kind == SILENCE:
            stream.dead_air_since = stream.dead_air_since or arrived
            stream.restart_average = True
        else:
            stream.dead_air_since = None
        if content.is_music:
            if stream.restart_average or stream.source.title != stream.averaged_title:  # a new song
                stream.average.restart()
                stream.restart_average, stream.averaged_title = False, stream.source.title
            average = stream.average.update(probs)
        else:
            average = stream.average.value if stream.average.value is not None else np.zeros_like(probs)
        top = int(np.argmax(average))
        stream.seq += 1
        latency = max(0.0, time.monotonic() - arrived)  # a file read fast is ahead of its audio's clock
        self.latencies.append(latency)
        self.metrics.latency.observe(latency)
        if latency > LATE_SECONDS:
            stream.late += 1
        stream.last = {
            "type": "prediction", "stream": stream.name, "seq": stream.seq, "time": round(stream_time, 3),
            "latency_ms": round(1000 * latency, 1), "probabilities": named_probabilities(self.genres, probs),
            "average": named_probabilities(self.genres, average),
            "content": content.kind, "content_probabilities": content.probabilities,
            "genre": self.genres[top] if content.is_music else None,
            "confidence": round(float(average[top]), 5) if content.is_music else None,
            "dead_air": content.kind == SILENCE, "level_db": round(max(level, -120.0), 1),
            "title": stream.source.title,
        }
        self.publish(stream.last)

    def _forward_events(self, stream: Stream) -> None:
        """Source events and newly lost audio become status messages."""
        events = stream.source.events
        while events:
            self.publish(status_message(stream, **events.popleft()))
        if stream.skipped and not stream.reported_skip:
            stream.reported_skip = True
            self.publish(status_message(stream, "caught_up", f"{stream.name}: the pipeline fell behind; windows "
                                        f"skipped to catch up (counted in skipped_windows)"))
        lost = stream.source.ring.overwritten + stream.source.overflows
        if lost > self._reported_loss.get(stream.name, 0):
            self._reported_loss[stream.name] = lost
            self.publish(status_message(stream, "dropped",
                                        f"{stream.name}: audio dropped (consumer behind or overflow)"))
