"""MQTT (paho-mqtt): per stream a retained state topic, events as messages, an availability topic with a last will,
and Home Assistant MQTT discovery, so every stream appears in Home Assistant as a device with its sensors.

    PREFIX/status                   online / offline (retained; the broker sends offline when the daemon dies)
    PREFIX/STREAM/state             {"genre", "confidence", "content", "level_db", "dead_air", "title", "online"}
    PREFIX/STREAM/event             each event (events.py), not retained; PREFIX/event for the pipeline's
    DISCOVERY/sensor|binary_sensor/streamgenre_STREAM/KEY/config    Home Assistant discovery (retained)
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import urllib.parse

from ..events import SOURCE_BACK, SOURCE_DOWN
from . import NotifyError, NotifyMetrics, public_name

log = logging.getLogger("streamgenre.notify")

PREFIX = "streamgenre"
DISCOVERY_PREFIX = "homeassistant"
STATE_SECONDS = 5.0  # a stream's state is published at most this often unless what it says (not its level) changed
QUEUE_MESSAGES = 100_000  # paho's queue while the broker is away; beyond, messages are dropped (counted)
KEEPALIVE_SECONDS = 30
# Home Assistant entities per stream: (component, key, name, extra config)
ENTITIES = (
    ("sensor", "genre", "Genre", {"value_template": "{{ value_json.genre }}", "icon": "mdi:music"}),
    ("sensor", "confidence", "Confidence", {"value_template": "{{ value_json.confidence }}",
                                            "state_class": "measurement"}),
    ("sensor", "content", "Content", {"value_template": "{{ value_json.content }}", "icon": "mdi:radio"}),
    ("sensor", "level", "Level", {"value_template": "{{ value_json.level_db }}", "unit_of_measurement": "dBFS",
                                  "state_class": "measurement"}),
    ("sensor", "title", "Title", {"value_template": "{{ value_json.title }}", "icon": "mdi:card-text"}),
    ("binary_sensor", "dead_air", "Dead air", {"value_template": "{{ 'ON' if value_json.dead_air else 'OFF' }}",
                                               "device_class": "problem"}),
    ("binary_sensor", "online", "Source", {"value_template": "{{ 'ON' if value_json.online else 'OFF' }}",
                                           "device_class": "connectivity"}),
)


def topic_part(name: str) -> str:
    """A stream's name as one topic level and a Home Assistant id: no wildcard, separator or dot."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


class Mqtt:
    def __init__(self, url: str, metrics: NotifyMetrics, prefix: str = PREFIX, discovery: bool = True,
                 discovery_prefix: str = DISCOVERY_PREFIX):
        try:
            import paho.mqtt.client as paho
        except ImportError:
            raise NotifyError('--mqtt needs paho-mqtt: pip install "streamgenre[mqtt]"') from None
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            raise NotifyError(f"{public_name(url)}: an MQTT URL needs a host (mqtt://[user:pass@]HOST[:PORT])")
        if not re.fullmatch(r"[\w./-]+", prefix) or not re.fullmatch(r"[\w./-]+", discovery_prefix):
            raise NotifyError(f"mqtt prefixes {prefix!r}, {discovery_prefix!r}: letters, digits, '_', '-', '.', '/'")
        self.name, self.metrics = public_name(url), metrics
        self.prefix, self.discovery, self.discovery_prefix = prefix.strip("/"), discovery, discovery_prefix.strip("/")
        self.availability = f"{self.prefix}/status"
        self.states: dict[str, dict] = {}  # stream -> its state as last built
        self.published: dict[str, tuple[float, dict]] = {}  # stream -> (when, state) last published
        self.lock = threading.Lock()  # paho's thread (on connect) and the events thread both publish
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=f"streamgenre-{socket.gethostname()}-{os.getpid()}")
        if parts.username:
            self.client.username_pw_set(urllib.parse.unquote(parts.username),
                                        urllib.parse.unquote(parts.password or "") or None)
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.host, self.port = parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.client.will_set(self.availability, "offline", qos=1, retain=True)
        self.client.max_queued_messages_set(QUEUE_MESSAGES)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.connected = False
        for counter in (metrics.sent, metrics.failures, metrics.dropped):
            counter.labels(target=self.name)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=KEEPALIVE_SECONDS)
        self.client.loop_start()  # paho's thread: connects, reconnects with backoff, sends the queue

    def stop(self) -> None:
        if self.connected:
            self.client.publish(self.availability, "offline", qos=1, retain=True).wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.metrics.failures.labels(target=self.name).inc()
            log.error("%s: the broker refused the connection: %s", self.name, reason_code)
            return
        self.connected = True
        log.info("%s: connected", self.name)
        with self.lock:
            self._publish(self.availability, "online")
            for stream, state in self.states.items():  # a broker that restarted has lost what was not retained
                self._announce(stream)
                self._publish(self._topic(stream, "state"), json.dumps(state))

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected:
            log.warning("%s: disconnected (%s); reconnecting", self.name, reason_code)
        self.connected = False

    def _topic(self, stream: str | None, leaf: str) -> str:
        return f"{self.prefix}/{topic_part(stream)}/{leaf}" if stream else f"{self.prefix}/{leaf}"

    def _publish(self, topic: str, payload: str, retain: bool = True) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != 0:  # queue full (the broker away for long): dropped, counted
            self.metrics.dropped.labels(target=self.name).inc()
        else:
            self.metrics.sent.labels(target=self.name).inc()

    def _announce(self, stream: str) -> None:
        """Home Assistant discovery for one stream: a device with a sensor per entity."""
        if not self.discovery:
            return
        node = f"streamgenre_{topic_part(stream)}"
        device = {"identifiers": [node], "name": f"streamgenre {stream}", "manufacturer": "streamgenre",
                  "model": "music genre classifier"}
        for component, key, name, extra in ENTITIES:
            config = {"name": name, "unique_id": f"{node}_{key}", "object_id": f"{node}_{key}",
                      "state_topic": self._topic(stream, "state"), "availability_topic": self.availability,
                      "json_attributes_topic": self._topic(stream, "state") if key == "genre" else None,
                      "device": device, **extra}
            config = {k: v for k, v in config.items() if v is not None}
            self._publish(f"{self.discovery_prefix}/{component}/{node}/{key}/config", json.dumps(config))

    def observe(self, message: dict) -> None:
        """Every daemon message: a stream's state, published when it changed or every STATE_SECONDS."""
        stream = message.get("stream")
        if not isinstance(stream, str):
            return
        state = dict(self.states.get(stream) or {"genre": None, "confidence": None, "content": None,
                                                  "level_db": None, "dead_air": False, "title": None,
                                                  "online": True})
        if message.get("type") == "prediction":
            state.update({k: message.get(k) for k in ("genre", "confidence", "content", "level_db", "dead_air",
                                                      "title")}, online=True)
            if message.get("genre") is None:  # talk, noise, dead air: the genre stays what the music left
                state["genre"], state["confidence"] = (self.states.get(stream) or {}).get("genre"), None
        elif message.get("type") == "status" and message.get("event") in SOURCE_DOWN:
            state["online"] = False
        elif message.get("type") == "status" and message.get("event") in SOURCE_BACK:
            state["online"] = True
        else:
            return
        now = time.monotonic()
        with self.lock:
            new = stream not in self.states
            self.states[stream] = state
            if new and self.connected:
                self._announce(stream)
            when, last = self.published.get(stream, (-float("inf"), {}))
            steady = {k: v for k, v in state.items() if k not in ("level_db", "confidence")}
            if steady != {k: v for k, v in last.items() if k not in ("level_db", "confidence")} \
                    or now - when >= STATE_SECONDS:
                self.published[stream] = (now, state)
                self._publish(self._topic(stream, "state"), json.dumps(state))

    def deliver(self, event: dict) -> None:
        with self.lock:
            self._publish(self._topic(event.get("stream"), "event"), json.dumps(event), retain=False)
