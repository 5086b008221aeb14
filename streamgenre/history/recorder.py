"""The daemon's genre log, written from its own thread so the pipeline never waits for the disk.

The pipeline's publish hook hands every message to `observe` (a queue put, nothing more). The recorder's thread
cuts the predictions into segments (segments.py) and writes what changed once a second, the open segments too, so
a `kill -9` loses at most the last second or so. A store that cannot be opened or written (a full disk, a read-only
file, a database down) is an error in the log, `/healthz` and `/metrics`; what was not written is kept and written
once the store works again, and the daemon classifies on. On a clean stop every open segment is closed and written.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from prometheus_client import Counter, Gauge

from .segments import Segment, Segmenter, Window
from .store import Store, open_store, window_row

FLUSH_SECONDS = 1.0  # at most this much of the log is lost to a kill -9
REOPEN_SECONDS = 10.0  # a store that failed is tried again after this
RETENTION_CHECK_SECONDS = 3600.0
HOLD_SECONDS = 10.0  # a change of genre must hold this long to cut a segment
RETENTION_DAYS = 90.0
QUEUE_LIMIT = 100_000  # messages waiting for the recorder's thread; beyond, windows are dropped (counted)
UNWRITTEN_WINDOWS_LIMIT = 1_000_000  # window rows kept while the store fails; beyond, the oldest are dropped

log = logging.getLogger("streamgenre.history")


class Recorder:
    def __init__(self, location: str, step_seconds: float, registry, hold: float = HOLD_SECONDS,
                 retention_days: float = RETENTION_DAYS, keep_windows: bool = False, audio_clock: bool = False):
        self.location, self.step, self.hold = location, step_seconds, hold
        # `serve --fast` reads files faster than real time: its windows are timed by the audio's own clock, each
        # stream's from the daemon's start, so a recording is logged as it would have aired
        self.audio_clock, self.started = audio_clock, time.time()
        self.retention_days, self.keep_windows = retention_days, keep_windows
        self.store: Store | None = None
        self.error: str | None = None
        self.queue: queue.Queue = queue.Queue(QUEUE_LIMIT)
        self.segmenters: dict[str, Segmenter] = {}
        self.unwritten: dict[str, Segment] = {}
        self.unwritten_windows: list[dict] = []
        self.new_streams: set[str] = set()  # streams first seen by this run: an earlier run's open segments close
        self.rows_written = Counter("streamgenre_history_rows_written", "Segment and window rows written to the "
                                    "history database", registry=registry)
        self.errors = Counter("streamgenre_history_errors", "Failed attempts to open or write the history database",
                              registry=registry)
        self.dropped = Counter("streamgenre_history_dropped_windows", "Windows the history could not keep (its queue "
                               "or its unwritten rows full)", registry=registry)
        self.ok = Gauge("streamgenre_history_ok", "1 while the history database takes writes", registry=registry)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_open = self._next_retention = 0.0

    def observe(self, message: dict) -> None:
        """From the pipeline's thread: a prediction or status message, queued with the wall time of its window."""
        if message["type"] == "prediction":
            when = (self.started + message["time"] if self.audio_clock
                    else time.time() - message["latency_ms"] / 1000)
            item = ("window", when, message)
        elif message["type"] == "status" and message["event"] == "removed":
            item = ("close", time.time(), message)
        else:
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped.inc()

    def problem(self) -> str | None:
        return f"history: {self.error}" if self.error else None

    def start(self) -> None:
        if self.audio_clock:
            log.info("history: --fast: segments are timed by the audio's own clock, each stream's from %s",
                     time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)))
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close every open segment and write it (SIGTERM): nothing still open is lost."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        next_flush = time.monotonic() + FLUSH_SECONDS
        while not self._stop.is_set():
            try:
                self._handle(*self.queue.get(timeout=0.2))
            except queue.Empty:
                pass
            if time.monotonic() >= next_flush:
                self._flush()
                next_flush = time.monotonic() + FLUSH_SECONDS
        while not self.queue.empty():
            self._handle(*self.queue.get_nowait())
        for segmenter in self.segmenters.values():
            segmenter.close()
        self._next_open = 0.0
        self._flush()
        if self.store:
            self.store.close()

    def _handle(self, kind: str, wall: float, message: dict) -> None:
        name = message["stream"]
        if name not in self.segmenters:
            self.segmenters[name] = Segmenter(name, self.hold)
            self.new_streams.add(name)
        segmenter = self.segmenters[name]
        if kind == "close":
            segmenter.close()
            return
        step = 2 * self.step if message["seq"] == 1 else self.step  # a stream's first window: all of its audio is new
        segmenter.add(Window(wall, step, message["content"], message["genre"], message["confidence"], message["title"]))
        if self.keep_windows:
            if len(self.unwritten_windows) >= UNWRITTEN_WINDOWS_LIMIT:
                self.unwritten_windows.pop(0)
                self.dropped.inc()
            self.unwritten_windows.append(window_row(name, wall, message["probabilities"]))

    def _flush(self) -> None:
        for segmenter in self.segmenters.values():
            self.unwritten.update((s.id, s) for s in segmenter.take_changed())
        if not (self.unwritten or self.unwritten_windows) and self.store:
            return
        try:
            store = self._open()
            if store is None:
                return
            if store.replaced():
                store = self._reopen_replaced(store)
            for name in sorted(self.new_streams):  # before this run's first rows of the stream are written
                if closed := store.close_leftovers(name):
                    log.info("history: %d segments of %s left open by a run that did not stop cleanly, closed",
                             closed, name)
                self.new_streams.discard(name)
            rows = [s.row() for s in self.unwritten.values()]
            store.write(rows, self.unwritten_windows)
            self._forget_old(store)
        except Exception as e:  # a full disk, a read-only file, a database gone: reported, retried, never fatal
            self._fail(f"cannot write to {self.store.where if self.store else self.location}: "
                       f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            self._drop_store()  # opened afresh for the retry: a broken connection does not mend itself
            return
        self.rows_written.inc(len(rows) + len(self.unwritten_windows))
        self.unwritten, self.unwritten_windows = {}, []
        if self.error:
            log.info("history: writing again to %s", store.where)
        self.error = None
        self.ok.set(1)

    def _open(self) -> Store | None:
        if self.store is None and time.monotonic() >= self._next_open:
            try:
                self.store = open_store(self.location)
                log.info("history: %s (%s)", self.store.where, self.store.name)
            except Exception as e:
                self._next_open = time.monotonic() + REOPEN_SECONDS
                self._fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return self.store

    def _reopen_replaced(self, store: Store) -> Store:
        """The database file was deleted or replaced while the daemon ran: say so, and write to the one there now,
        the open segments again from their start (what the old file held of this run is gone with it)."""
        self._fail(f"{store.where} was deleted or replaced while the daemon ran; the segments it held are gone "
                   "with it: writing to a new one, the open segments from their start")
        self._drop_store()
        self.store = open_store(self.location)
        for segmenter in self.segmenters.values():
            if segmenter.current is not None:
                self.unwritten[segmenter.current.id] = segmenter.current
        return self.store

    def _drop_store(self) -> None:
        if self.store:
            try:
                self.store.close()
            except Exception:  # closing a connection that already broke: nothing more to learn from it
                pass
        self.store, self._next_open = None, time.monotonic() + REOPEN_SECONDS

    def _forget_old(self, store: Store) -> None:
        if self.retention_days and time.monotonic() >= self._next_retention:
            self._next_retention = time.monotonic() + RETENTION_CHECK_SECONDS
            deleted = store.delete_before(time.time() - self.retention_days * 86400)
            if deleted:
                log.info("history: %d segments older than %g days deleted", deleted, self.retention_days)

    def _fail(self, message: str) -> None:
        self.error = message
        self.errors.inc()
        self.ok.set(0)
        log.error("history: %s (kept in memory, retried)", message)
