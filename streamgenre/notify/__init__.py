"""Where events go: one small module per kind of target behind one interface (`deliver(event)`, `start`, `stop`),
picked from the target's URL: http(s):// a webhook (a JSON POST), mqtt(s):// an MQTT broker (with Home Assistant
discovery), anything else an Apprise URL (chat, e-mail; `pip install "streamgenre[notify]"`). Nothing here blocks
the pipeline: each target queues and sends from a thread of its own, tries again with backoff, and counts what it
sent, what failed and what it gave up in `/metrics`."""

from __future__ import annotations

import logging
import queue
import threading
import urllib.parse

from prometheus_client import Counter

log = logging.getLogger("streamgenre.notify")

QUEUE_EVENTS = 1_000  # events waiting for one target; beyond, the newest are dropped (counted)
BACKOFF_SECONDS = (1, 2, 4, 8, 16)  # waits between the tries of one event; after the last it is given up


class NotifyError(Exception):
    pass


class NotifyMetrics:
    """The targets' counters, labelled by a target's name (its URL without credentials, query or path); made with
    the targets, before the pipeline whose registry shows them (`register`)."""

    def __init__(self):
        self.sent = Counter("streamgenre_notifications_sent", "Events a target took", ["target"], registry=None)
        self.failures = Counter("streamgenre_notification_failures", "Tries to send an event that failed",
                                ["target"], registry=None)
        self.dropped = Counter("streamgenre_notifications_dropped", "Events given up after every try, or not "
                               "queued because the target's queue was full", ["target"], registry=None)

    def register(self, registry) -> None:
        for counter in (self.sent, self.failures, self.dropped):
            registry.register(counter)


def public_name(url: str) -> str:
    """A target as logs and metrics may show it: scheme and host, never its user, password, token or path."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}" if host else f"{parts.scheme}://"


class Delivery:
    """A target's queue and sending thread; subclasses send one event (`send`, raising on failure)."""

    def __init__(self, name: str, metrics: NotifyMetrics):
        self.name, self.metrics = name, metrics
        self.queue: queue.Queue = queue.Queue(QUEUE_EVENTS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"notify {name}", daemon=True)
        for counter in (metrics.sent, metrics.failures, metrics.dropped):
            counter.labels(target=name)  # shown at 0 from the start

    def deliver(self, event: dict) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.metrics.dropped.labels(target=self.name).inc()
            log.error("%s: its queue is full; an event was dropped: %s", self.name, event["message"])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def send(self, event: dict) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            for wait in (*BACKOFF_SECONDS, None):
                try:
                    self.send(event)
                except Exception as e:
                    self.metrics.failures.labels(target=self.name).inc()
                    reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    if wait is None or self._stop.wait(wait):
                        self.metrics.dropped.labels(target=self.name).inc()
                        log.error("%s: gave up an event (%s): %s", self.name, reason, event["message"])
                        break
                    log.warning("%s: %s; trying again in %d s", self.name, reason, wait)
                else:
                    self.metrics.sent.labels(target=self.name).inc()
                    break


def create_target(url: str, metrics: NotifyMetrics, **mqtt_settings):
    """The target a URL names; NotifyError (one line) where it cannot be one."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        from .webhook import Webhook

        return Webhook(url, metrics)
    if scheme in ("mqtt", "mqtts"):
        from .mqtt import Mqtt

        return Mqtt(url, metrics, **mqtt_settings)
    from .apprise_target import AppriseTarget

    return AppriseTarget(url, metrics)


NOTIFY_KEYS = {"url", "events", "streams", "min_seconds", "cooldown_seconds"}


def notify_entries(entries) -> list[dict]:
    """The config's [[notify]] tables, checked: a url, and optionally events, streams, min_seconds,
    cooldown_seconds; NotifyError (one line) for anything else."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise NotifyError(f"notify must be [[notify]] tables (url, events, streams, ...), not {entries!r}")
    for entry in entries:
        if unknown := set(entry) - NOTIFY_KEYS:
            raise NotifyError(f"[[notify]]: unknown keys {sorted(unknown)}; known: {', '.join(sorted(NOTIFY_KEYS))}")
        if not isinstance(entry.get("url"), str) or ":" not in entry["url"]:
            raise NotifyError("[[notify]]: url must be a URL (https://..., mqtt://..., discord://...)")
        for key in ("events", "streams"):
            if not isinstance(entry.get(key, []), list) or not all(isinstance(v, str) for v in entry.get(key, [])):
                raise NotifyError(f"[[notify]] {key}: a list of names")
        for key in ("min_seconds", "cooldown_seconds"):
            if key in entry and (type(entry[key]) not in (int, float)):
                raise NotifyError(f"[[notify]] {key} = {entry[key]!r}: seconds")
        try:
            rule(entry)
        except ValueError as e:
            raise NotifyError(f"[[notify]]: {e}") from None
    return entries


def rule(entry: dict):
    from ..events import COOLDOWN_SECONDS, Rule

    return Rule(tuple(entry.get("events", ())), tuple(entry.get("streams", ())),
                None if entry.get("min_seconds") is None else float(entry["min_seconds"]),
                float(entry.get("cooldown_seconds", COOLDOWN_SECONDS)))


def create_targets(entries: list[dict], metrics: NotifyMetrics, **mqtt_settings) -> list[tuple]:
    """(rule, target) for each [[notify]] entry; NotifyError where a target cannot be made."""
    return [(rule(entry), create_target(entry["url"], metrics, **mqtt_settings)) for entry in entries]
