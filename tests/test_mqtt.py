"""MQTT against Debian's Mosquitto broker, started by the test on 127.0.0.1: Home Assistant discovery and the state
topics reach a real subscriber, events arrive as messages, and a daemon killed with SIGKILL is marked offline by
the broker (its last will)."""

import json
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from conftest import poll, synth_music, write_audio
from daemon import free_port, running_daemon

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if shutil.which("/usr/sbin/mosquitto") else None)
paho = pytest.importorskip("paho.mqtt.client", reason='paho-mqtt is not installed (pip install "streamgenre[mqtt]")')
pytestmark = pytest.mark.skipif(not MOSQUITTO, reason="Mosquitto is not installed (apt-get install mosquitto)")


def start_broker(port: int, tmp_path) -> subprocess.Popen:
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        try:
            client.connect("127.0.0.1", port)
            client.disconnect()
            break
        except OSError:
            time.sleep(0.1)
    else:
        pytest.skip(f"Mosquitto did not start: {proc.stdout.read().decode()[-500:]}")
    return proc


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    proc = start_broker(port, tmp_path)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


class Subscriber:
    """A real MQTT subscriber to everything, keeping (topic, payload, retained) as they arrive."""

    def __init__(self, port: int):
        self.messages, self.lock = [], threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload.decode(), m.retain))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("#", qos=1)
        self.client.loop_start()

    def wait(self, found, timeout: float):
        hits = poll(lambda: [m for m in list(self.messages) if found(*m)], timeout=timeout)
        assert hits, f"not received in {timeout} s; got {[m[:2] for m in self.messages][-20:]}"
        return hits

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def test_discovery_state_events_and_the_last_will(broker, tmp_path):
    music = synth_music(8.0, seed=5)
    write_audio(tmp_path / "show.wav", np.concatenate([music, np.zeros(22050 * 5, np.float32), music]))
    config = tmp_path / "streamgenre.toml"
    config.write_text(f'dead_air_seconds = 2.0\n[[source]]\nname = "radio.one"\nfile = "{tmp_path / "show.wav"}"\n')
    subscriber = Subscriber(broker)
    try:
        with running_daemon("--config", str(config), "--mqtt", f"mqtt://127.0.0.1:{broker}",
                            "--history", "off") as (port, proc):
            online = subscriber.wait(lambda t, p, r: t == "streamgenre/status" and p == "online", 20)
            configs = subscriber.wait(lambda t, p, r: t.startswith("homeassistant/") and t.endswith("/config"), 20)
            state = subscriber.wait(lambda t, p, r: t == "streamgenre/radio_one/state"
                                    and json.loads(p)["genre"] is not None, 20)
            dead_air = subscriber.wait(lambda t, p, r: t == "streamgenre/radio_one/state"
                                       and json.loads(p)["dead_air"], 20)
            event = subscriber.wait(lambda t, p, r: t == "streamgenre/radio_one/event"
                                    and json.loads(p)["event"] == "dead_air_started", 10)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            will = subscriber.wait(lambda t, p, r: t == "streamgenre/status" and p == "offline", 10)
        assert online and will
        time.sleep(1)  # every discovery config has arrived
        topics = {t: json.loads(p) for t, p, _ in subscriber.messages if t.endswith("/config")}
        assert {t.split("/")[1] for t in topics} == {"sensor", "binary_sensor"} and len(topics) == 7, topics
        genre = topics["homeassistant/sensor/streamgenre_radio_one/genre/config"]
        assert genre["state_topic"] == "streamgenre/radio_one/state" and genre["availability_topic"] == \
            "streamgenre/status" and genre["unique_id"] == "streamgenre_radio_one_genre"
        assert genre["device"]["identifiers"] == ["streamgenre_radio_one"] and "{{ value_json.genre }}" in \
            genre["value_template"]
        late = Subscriber(broker)  # connects after it all: what is retained is what Home Assistant finds on a start
        try:
            kept = late.wait(lambda t, p, r: r and t == "homeassistant/sensor/streamgenre_radio_one/genre/config", 10)
            late.wait(lambda t, p, r: r and t == "streamgenre/radio_one/state", 10)
            late.wait(lambda t, p, r: r and t == "streamgenre/status" and p == "offline", 10)
        finally:
            late.stop()
        assert json.loads(kept[0][1]) == genre and configs
        body = json.loads(state[0][1])
        assert set(body) == {"genre", "confidence", "content", "level_db", "dead_air", "title", "online"}
        assert body["online"] is True and 0 < body["confidence"] <= 1 and dead_air
        assert not event[0][2] and json.loads(event[0][1])["stream"] == "radio.one"  # events are not retained
    finally:
        subscriber.stop()


def test_a_broker_that_was_away_gets_the_streams_once_it_is_up(tmp_path, music_file):
    """The daemon starts while its broker is down (it serves meanwhile, /healthz ok); paho reconnects with backoff,
    and once the broker is up the availability, discovery and state arrive without a restart."""
    from daemon import http_get

    broker_port = free_port()
    with running_daemon(f"song={music_file}", "--mqtt", f"mqtt://u:secret@127.0.0.1:{broker_port}",
                        "--history", "off") as (port, _):
        time.sleep(3)
        assert http_get(port, "/healthz")[0] == 200 and "secret" not in http_get(port, "/metrics")[1]
        broker = start_broker(broker_port, tmp_path)
        subscriber = Subscriber(broker_port)
        try:
            subscriber.wait(lambda t, p, r: t == "streamgenre/status" and p == "online", 40)
            subscriber.wait(lambda t, p, r: t == "homeassistant/sensor/streamgenre_song/genre/config", 10)
            subscriber.wait(lambda t, p, r: t == "streamgenre/song/state", 10)
        finally:
            subscriber.stop()
            broker.terminate()
            broker.wait(timeout=10)
