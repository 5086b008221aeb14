"""Events and their rules (events.py), and webhooks against a real HTTP receiver: dead air start and end reach it
from a real daemon, and a receiver that is down or hangs costs the pipeline nothing."""

import http.server
import json
import re
import socket
import threading

import numpy as np
import pytest

from conftest import synth_music, write_audio
from daemon import collect, http_get, predictions, running_daemon
from streamgenre.events import Events, Rule


class Told:
    """A target that keeps what it is told."""

    def __init__(self):
        self.events = []

    def deliver(self, event):
        self.events.append(event)

    def start(self):
        pass

    def stop(self):
        pass


def window(stream, content="music", genre="jazz"):
    return {"type": "prediction", "stream": stream, "dead_air": content == "silence", "content": content,
            "genre": genre if content == "music" else None}


def play(events: Events, timeline):
    """Feed (time, message) pairs, and look at the conditions every second between them, as the event thread does."""
    clock = 0.0
    for at, message in timeline:
        while clock + 1 <= at:
            clock += 1
            events._judge_all(clock)
        events._take(message, float(at))


def test_rules_hold_conditions_for_their_minimum_and_cool_down_a_flapping_feed():
    every, radio1, quiet = Told(), Told(), Told()
    events = Events([(Rule(cooldown_seconds=60), every), (Rule(streams=("radio1",), events=("dead_air_started",),
                                                               min_seconds=2), radio1),
                     (Rule(min_seconds=30, cooldown_seconds=0), quiet)], dead_air_seconds=10)
    timeline = [(t, window("radio1")) for t in np.arange(0, 30, 1.5)]  # jazz
    timeline += [(t, window("radio1", "silence")) for t in np.arange(30, 45, 1.5)]  # 15 s of dead air
    timeline += [(t, window("radio1")) for t in np.arange(45, 50, 1.5)]
    timeline += [(t, window("radio1", "silence")) for t in np.arange(50, 65, 1.5)]  # again, within the cool-down
    timeline += [(t, window("radio1", "music", "rock")) for t in np.arange(65, 140, 1.5)]  # rock, for good
    timeline += [(t, window("radio2", "speech")) for t in np.arange(0, 140, 1.5)]  # talk throughout: no change
    play(events, sorted(timeline, key=lambda x: x[0]))
    told = [(e["event"], e["stream"], e.get("length_seconds")) for e in every.events]
    assert told[:2] == [("dead_air_started", "radio1", 10.0), ("dead_air_ended", "radio1", 15.0)]
    # the second dead air (15 s, 5 s after the first ended) is within the 60-s cool-down: not told, nor its end
    assert [e for e in told if e[0].startswith("dead_air")] == told[:2]
    changes = [(e["from"], e["to"]) for e in every.events if e["event"] == "genre_changed"]
    assert changes == [("jazz", "rock")] and not [e for e in every.events if e["stream"] == "radio2"]
    assert [(e["event"], e["length_seconds"]) for e in radio1.events] == [("dead_air_started", 2.0)]
    assert [e["event"] for e in quiet.events] == ["genre_changed"]  # 15-s dead airs are shorter than its 30 s
    assert all(json.loads(json.dumps(e)) == e and e["message"] for e in every.events + radio1.events)


def test_a_source_down_and_back_and_the_pipeline_failing_are_events():
    told = Told()
    problem = [None]
    events = Events([(Rule(), told)], problem=lambda: problem[0])
    events._take({"type": "status", "stream": "radio1", "event": "reconnecting", "message": "radio1: gone"}, 1.0)
    events._take(window("radio1"), 9.0)
    problem[0] = "pipeline: engine exploded"
    events._set(None, "pipeline", True, 10.0, problem[0])
    events._judge_all(10.0)
    events._set(None, "pipeline", False, 12.5)
    events._judge_all(12.5)
    assert [(e["event"], e["stream"], e["length_seconds"]) for e in told.events] == [
        ("source_down", "radio1", 0.0), ("source_back", "radio1", 8.0), ("pipeline_failed", None, 0.0),
        ("pipeline_recovered", None, 2.5)]
    assert "radio1: gone" in told.events[0]["message"] and "engine exploded" in told.events[2]["message"]


@pytest.mark.parametrize("bad", [{"events": ["dead_air_stared"]}, {"min_seconds": -1}, {"cooldown_seconds": 1e9}])
def test_a_rule_refuses_what_it_does_not_know(bad):
    with pytest.raises(ValueError):
        Rule(**{k: tuple(v) if isinstance(v, list) else v for k, v in bad.items()})


class Receiver(http.server.ThreadingHTTPServer):
    """A real HTTP receiver on 127.0.0.1 keeping every JSON body POSTed to it."""

    def __init__(self):
        self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(handler):
                self.bodies.append(json.loads(handler.rfile.read(int(handler.headers["Content-Length"]))))
                handler.send_response(204)
                handler.end_headers()

            def log_message(handler, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_a_webhook_gets_dead_air_start_and_end_and_a_receiver_that_is_down_costs_nothing(tmp_path):
    """7 s of silence between music, in real time: the receiver gets dead_air_started (after the 4 s configured) and
    dead_air_ended (with its length); a second target that accepts connections but never answers, and a third on a
    port nobody listens on, are counted as failing while every window reaches the WebSocket client on time."""
    receiver = Receiver()
    hang = socket.socket()  # accepts (the kernel's backlog) and never answers
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    music = synth_music(6.0, seed=3)
    write_audio(tmp_path / "show.wav", np.concatenate([music, np.zeros(22050 * 7, np.float32), music]))
    config = tmp_path / "streamgenre.toml"
    config.write_text(f'dead_air_seconds = 4\n[[source]]\nname = "show"\nfile = "{tmp_path / "show.wav"}"\n'
                      f'[[notify]]\nurl = "http://127.0.0.1:{receiver.server_port}/hook"\n'
                      f'events = ["dead_air_started", "dead_air_ended"]\n'
                      f'[[notify]]\nurl = "http://user:secret@127.0.0.1:{hang.getsockname()[1]}/hook"\n')
    with running_daemon("--config", str(config), "--once", "--webhook", f"http://127.0.0.1:{closed}/x",
                        "--history", "off") as (port, _):
        got = collect(port, lambda ms: any(m["type"] == "status" and m["event"] == "ended" for m in ms), timeout=45)
        metrics = http_get(port, "/metrics")[1]
    windows = predictions(got, "show")
    assert len(windows) == int((19 * 22050 - 2048) / (128 * 256)) - 1  # every window of the file
    assert max(w["latency_ms"] for w in windows) < 500
    kinds = [(b["event"], b["stream"]) for b in receiver.bodies]
    assert kinds == [("dead_air_started", "show"), ("dead_air_ended", "show")], receiver.bodies
    assert 4 <= receiver.bodies[0]["length_seconds"] < 6 and 5 <= receiver.bodies[1]["length_seconds"] <= 9
    events = [m for _, m in got if m["type"] == "event"]  # the WebSocket clients see them too
    assert [e["event"] for e in events if e["event"].startswith("dead_air")] == ["dead_air_started", "dead_air_ended"]
    failures = dict(re.findall(r'^streamgenre_notification_failures_total\{target="([^"]+)"\} (\S+)', metrics, re.M))
    assert float(failures[f"http://127.0.0.1:{closed}"]) >= 2 and "secret" not in metrics
    assert float(re.search(r'streamgenre_notifications_sent_total\{target="http://127.0.0.1:%d"\} (\S+)'
                           % receiver.server_port, metrics).group(1)) == 2
    hang.close()
    receiver.shutdown()


def test_apprise_urls_reach_their_service_and_a_bad_target_is_a_one_line_error(tmp_path):
    """Apprise's json:// (a JSON POST in Apprise's own format) against the real receiver stands for the chat and
    mail services; a URL no target takes stops the daemon at start with one line."""
    pytest.importorskip("apprise", reason='Apprise is not installed (pip install "streamgenre[notify]")')
    import subprocess
    import sys

    receiver = Receiver()
    music = synth_music(4.0, seed=4)
    write_audio(tmp_path / "show.wav", np.concatenate([music, np.zeros(22050 * 6, np.float32), music]))
    config = tmp_path / "streamgenre.toml"
    config.write_text(f'dead_air_seconds = 2.0\n[[source]]\nname = "show"\nfile = "{tmp_path / "show.wav"}"\n'
                      f'[[notify]]\nurl = "json://127.0.0.1:{receiver.server_port}/apprise"\n'
                      f'events = ["dead_air_started"]\n')
    with running_daemon("--config", str(config), "--once", "--history", "off") as (port, _):
        collect(port, lambda ms: any(m["type"] == "status" and m["event"] == "ended" for m in ms), timeout=30)
    assert len(receiver.bodies) == 1 and receiver.bodies[0]["title"] == "streamgenre: dead air started (show)"
    assert receiver.bodies[0]["message"].startswith("show: dead air for ")
    bad = subprocess.run([sys.executable, "-m", "streamgenre", "serve", str(tmp_path / "show.wav"), "--notify",
                          "nonsense://x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "Apprise" in bad.stderr
    receiver.shutdown()
