"""Events: what a station wants to be told, made from the daemon's own messages (the same in one process, over
worker processes or a Ray cluster). Dead air started / ended, a source down / back, a content change, a genre change
that held, the pipeline failing / recovered. Each notification target has its rules: which streams, which events,
how long a condition must hold before it is told (min_seconds) and how long before the same kind is told again for
the same stream (cooldown_seconds), so a flapping feed does not flood anyone."""

from __future__ import annotations

import datetime
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("streamgenre")

EVENTS = ("dead_air_started", "dead_air_ended", "source_down", "source_back", "content_changed", "genre_changed",
          "pipeline_failed", "pipeline_recovered")
ONSETS = {"dead_air": ("dead_air_started", "dead_air_ended"), "source": ("source_down", "source_back"),
          "pipeline": ("pipeline_failed", "pipeline_recovered")}  # a condition that starts, then ends
CHANGES = {"content": "content_changed", "genre": "genre_changed"}  # a value that changes to another
HELD_SECONDS = {"dead_air": None, "source": 0.0, "pipeline": 0.0, "content": 10.0, "genre": 30.0}
# how long a condition holds before it is told, unless a rule says; None: the daemon's dead_air_seconds
COOLDOWN_SECONDS = 60.0
SOURCE_DOWN = ("error", "reconnecting", "interrupted")  # status events that mean a stream delivers no audio
SOURCE_BACK = ("recovered", "resumed")
TICK_SECONDS = 1.0  # conditions are looked at this often besides at every message
QUEUE_MESSAGES = 100_000  # messages waiting for the event thread; beyond, the newest are dropped and counted


@dataclass
class Condition:
    """One condition of one stream (or of the pipeline, stream None): its value and since when it holds."""

    value: object
    since: float
    detail: str | None = None  # why (a source's error, the pipeline's problem)
    ended_after: float = 0.0  # how long the onset before this value held


@dataclass
class Rule:
    """Which events of which streams a target is told; empty tuples mean all. `min_seconds`: for every event kind,
    instead of HELD_SECONDS."""

    events: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    min_seconds: float | None = None
    cooldown_seconds: float = COOLDOWN_SECONDS
    told: dict = field(default_factory=dict)  # (stream, condition) -> the value last told
    told_at: dict = field(default_factory=dict)  # (stream, condition) -> when an onset or change was last told

    def __post_init__(self):
        unknown = set(self.events) - set(EVENTS)
        if unknown:
            raise ValueError(f"unknown events {sorted(unknown)}; known: {', '.join(EVENTS)}")
        if self.min_seconds is not None and not 0 <= self.min_seconds < 86_400:
            raise ValueError(f"min_seconds = {self.min_seconds!r}: seconds from 0 to a day")
        if not 0 <= self.cooldown_seconds < 86_400:
            raise ValueError(f"cooldown_seconds = {self.cooldown_seconds!r}: seconds from 0 to a day")

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events

    def judge(self, stream: str | None, name: str, condition: Condition, now: float, held: float) -> dict | None:
        """The event this rule tells of this condition now, or None (the caller skips streams it does not cover)."""
        key, needed = (stream, name), held if self.min_seconds is None else self.min_seconds
        told, settled = self.told.get(key), now - condition.since >= needed
        cooled = now - self.told_at.get(key, -float("inf")) >= self.cooldown_seconds
        if name in ONSETS:
            start, end = ONSETS[name]
            if condition.value and not told and settled and cooled:
                self.told[key], self.told_at[key] = True, now
                return event(start, stream, condition, now) if self.wants(start) else None
            if not condition.value and told:
                self.told[key] = False
                return event(end, stream, condition, now) if self.wants(end) else None
            return None
        if not settled or condition.value == told:
            return None
        if told is None:  # the first value held: where the stream starts, not a change
            self.told[key] = condition.value
            return None
        if not cooled:
            return None
        self.told[key], self.told_at[key] = condition.value, now
        kind = CHANGES[name]
        return event(kind, stream, condition, now, previous=told) if self.wants(kind) else None


def event(kind: str, stream: str | None, condition: Condition, now: float, previous=None) -> dict:
    """An event message: what happened, to which stream, when (UTC), and what it is about."""
    body = {"type": "event", "event": kind, "stream": stream,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if kind in ("dead_air_ended", "source_back", "pipeline_recovered"):
        body["length_seconds"] = round(condition.ended_after, 1)
    elif kind in ("dead_air_started", "source_down", "pipeline_failed"):
        body["length_seconds"] = round(now - condition.since, 1)
    if kind in CHANGES.values():
        body["from"], body["to"] = previous, condition.value
    subject = stream or "the pipeline"
    body["message"] = {
        "dead_air_started": f"{subject}: dead air for {body.get('length_seconds', 0):g} s",
        "dead_air_ended": f"{subject}: sound again after {body.get('length_seconds', 0):g} s of dead air",
        "source_down": f"{subject}: source down: {condition.detail}",
        "source_back": f"{subject}: source back after {body.get('length_seconds', 0):g} s",
        "content_changed": f"{subject}: {previous} -> {condition.value}",
        "genre_changed": f"{subject}: genre {previous} -> {condition.value}",
        "pipeline_failed": f"streamgenre: {condition.detail}",
        "pipeline_recovered": f"streamgenre: the pipeline classifies again after {body.get('length_seconds', 0):g} s",
    }[kind]
    return body


class Events:
    """Watches the daemon's messages (`observe`, from any thread, never blocking) and the pipeline's problem, and
    hands each target the events its rules choose. Targets have `deliver(event)` (which must not block: each queues
    and sends in a thread of its own) and may have `observe(message)` for every message (MQTT's state topics)."""

    def __init__(self, targets: list[tuple[Rule, object]], problem=lambda: None,
                 dead_air_seconds: float = 10.0, window_seconds: float = 0.0, metrics=None):
        self.targets, self.problem, self.window_seconds = targets, problem, window_seconds
        self.held = HELD_SECONDS | {"dead_air": dead_air_seconds}
        self.conditions: dict[tuple[str | None, str], Condition] = {}
        self.messages: queue.Queue = queue.Queue(QUEUE_MESSAGES)
        self.metrics, self.dropped = metrics, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)

    def observe(self, message: dict) -> None:
        try:
            self.messages.put_nowait(message)
        except queue.Full:
            self.dropped += 1
            if self.metrics:
                self.metrics.dropped.labels(target="events").inc()

    def start(self) -> None:
        for _, target in self.targets:
            target.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for _, target in self.targets:
            target.stop()

    def _run(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                message = self.messages.get(timeout=TICK_SECONDS / 4)
            except queue.Empty:
                message = None
            now = time.monotonic()
            try:
                if message is not None:
                    self._take(message, now)
                if now >= next_tick:
                    next_tick = now + TICK_SECONDS
                    problem = self.problem()
                    self._set(None, "pipeline", problem is not None, now, problem)
                    self._judge_all(now)
            except Exception as e:  # a broken message or target: logged, and the next goes on
                log.error("events: %s: %s", type(e).__name__, str(e).splitlines()[0] if str(e) else "")

    def _take(self, message: dict, now: float) -> None:
        for _, target in self.targets:
            if hasattr(target, "observe"):
                target.observe(message)
        stream = message.get("stream")
        if message.get("type") == "prediction":
            self._set(stream, "source", False, now)
            # the silence began with the first silent window, not at its end
            self._set(stream, "dead_air", bool(message.get("dead_air")), now, since=now - self.window_seconds)
            if message.get("content") != "silence":  # dead air is its own event
                self._set(stream, "content", message.get("content"), now)
            if message.get("genre") is not None:
                self._set(stream, "genre", message["genre"], now)
        elif message.get("type") == "status" and message.get("event") in SOURCE_DOWN:
            self._set(stream, "source", True, now, message.get("message"))
        elif message.get("type") == "status" and message.get("event") in SOURCE_BACK:
            self._set(stream, "source", False, now)
        else:
            return
        self._judge_stream(stream, now)

    def _set(self, stream: str | None, name: str, value, now: float, detail: str | None = None,
             since: float | None = None) -> None:
        """A condition's new value (holding from `since`, else from now); an onset that ends keeps how long it
        held."""
        current = self.conditions.get((stream, name))
        if current is None or current.value != value:
            ended_after = now - current.since if current is not None and name in ONSETS and current.value else 0.0
            began = now if since is None or not value else since
            self.conditions[(stream, name)] = Condition(value, began, detail, ended_after)
        elif detail:
            current.detail = detail

    def _judge_stream(self, stream: str | None, now: float) -> None:
        for name in HELD_SECONDS:
            if (condition := self.conditions.get((stream, name))) is not None:
                self._judge(stream, name, condition, now)

    def _judge_all(self, now: float) -> None:
        for (stream, name), condition in list(self.conditions.items()):
            self._judge(stream, name, condition, now)

    def _judge(self, stream: str | None, name: str, condition: Condition, now: float) -> None:
        for rule, target in self.targets:
            if stream is not None and rule.streams and stream not in rule.streams:
                continue
            if (told := rule.judge(stream, name, condition, now, self.held[name])) is not None:
                target.deliver(told)
