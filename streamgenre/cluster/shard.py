"""One shard of a clustered daemon: today's pipeline (sources, ring buffers, frontend, batched engine, running
averages) on some of the daemon's streams, inside a Ray actor. It keeps its messages until the coordinator drains
them, with each stream's state and counters; Ray restarts it (its constructor runs again) where its process or node
dies."""

from __future__ import annotations

import collections
import os
import socket
import time
import uuid

from ..backends import create_engine
from ..content_stage import create_content_stage
from ..frontend import create_frontend, limit_blas_threads
from ..model import load_model
from ..pipeline import Pipeline, reloaded_streams, stream_from_spec

BACKLOG = 20_000  # messages kept between two drains; a coordinator away for longer loses the oldest


class Shard:
    """`settings`: model, engine, frontend, fp16, threads (ONNX Runtime's), average, silence_db, dead_air_seconds,
    content, content_patches, content_switch, every, realtime, loop (as coordinator.shard_settings makes them)."""

    def __init__(self, index: int, settings: dict, specs: list[str]):
        limit_blas_threads()
        self.index, self.settings = index, settings
        self.incarnation, self.started = uuid.uuid4().hex, time.time()
        model = load_model(settings["model"])
        self.params = model.params
        frontend = create_frontend(settings["frontend"], model.params)
        engine = create_engine(model, settings["engine"], threads=settings["threads"], fp16=settings["fp16"])
        content = create_content_stage(settings["content"], settings["engine"], model.params.step_seconds,
                                       settings["content_patches"], settings["threads"], settings["fp16"],
                                       switch=settings["content_switch"])
        self.description = f"{engine.description}; frontend {frontend.description}; {content.description}"
        self.messages: collections.deque = collections.deque(maxlen=BACKLOG)
        self.pipeline = Pipeline([self._stream(spec) for spec in specs], frontend, engine, model.genres,
                                 self.messages.append, content=content)
        self.pipeline.start()

    def _stream(self, spec: str):
        s = self.settings
        return stream_from_spec(spec, s["average"], s["realtime"], s["silence_db"], s["dead_air_seconds"],
                                self.params, s["loop"], s["every"])

    def configure(self, specs: list[str]) -> None:
        """Serve these streams: unchanged ones go on uninterrupted, new ones start, the others stop (a reload, or a
        restarted shard brought up to date)."""
        if [s.spec for s in self.pipeline.streams] != specs:
            self.pipeline.replace_streams(reloaded_streams(self.pipeline.streams, specs, self._stream))

    def drain(self, states: bool = True) -> dict:
        """The messages since the last drain, the state of the shard and, with `states`, of each of its streams."""
        messages = []
        while self.messages:
            messages.append(self.messages.popleft())
        return {"incarnation": self.incarnation, "started": self.started, "pid": os.getpid(),
                "node": socket.gethostname(), "description": self.description, "problem": self.pipeline.problem(),
                "messages": messages,
                "streams": {s.name: {"kind": s.source.kind, "error": s.source.error, "finished": s.source.finished,
                                     "problem": s.problem(), "dead_air_length": s.dead_air_length(),
                                     "counters": s.counters()} for s in self.pipeline.streams} if states else {}}

    def stop(self) -> None:
        self.pipeline.stop()
