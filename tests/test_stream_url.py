"""An MP3 Icecast-style stream from a local HTTP server, cut mid-stream: the daemon reconnects and goes on."""

import http.server
import socket
import threading
import time

import numpy as np
import pytest

from conftest import poll, synth_music, write_audio
from daemon import collect, free_port, predictions, running_daemon

METAINT = 4096


class Radio(http.server.BaseHTTPRequestHandler):
    """Plays an MP3 at real-time pace with ICY titles; the first connection is cut after `cut_after` seconds."""

    mp3: bytes = b""
    seconds: float = 1.0
    cut_after: float = 5.0
    stall_after: float | None = None  # every connection stops sending after this many seconds, and stays open
    sends_icy = True  # False: a server that ignores Icy-MetaData (no titles, no metadata blocks)
    connections = 0

    def do_GET(self):
        type(self).connections += 1
        first = type(self).connections == 1
        icy = self.sends_icy and self.headers.get("Icy-MetaData") == "1"
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        if icy:
            self.send_header("icy-metaint", str(METAINT))
        self.end_headers()
        rate = len(self.mp3) / self.seconds
        title = f"StreamTitle='Test Artist - Song {type(self).connections}';".encode()
        meta = bytes([-(-len(title) // 16)]) + title.ljust(16 * -(-len(title) // 16), b"\0")
        started, sent, until_meta = time.monotonic(), 0, METAINT
        try:
            while sent < len(self.mp3):
                if first and sent > rate * self.cut_after:
                    self.connection.shutdown(socket.SHUT_RDWR)  # the feed drops mid-stream
                    return
                if self.stall_after is not None and sent > rate * self.stall_after:
                    time.sleep(60)  # the feed stalls: the connection stays open, nothing more comes
                    return
                chunk = self.mp3[sent : sent + min(1024, until_meta if icy else 1024)]
                self.wfile.write(chunk)
                sent += len(chunk)
                until_meta -= len(chunk)
                if icy and until_meta == 0:
                    self.wfile.write(meta)
                    until_meta = METAINT
                ahead = started + sent / rate - time.monotonic() - 1.0  # a 1-s burst, then real time
                if ahead > 0:
                    time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def radio(tmp_path):
    path = write_audio(tmp_path / "radio.mp3", synth_music(40, seed=5))
    Radio.mp3, Radio.seconds, Radio.connections, Radio.stall_after, Radio.sends_icy = path.read_bytes(), 40.0, 0, None, True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Radio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.mp3"
    server.shutdown()


def test_reconnects_after_the_feed_drops_and_keeps_titles(radio):
    with running_daemon(f"radio={radio}") as (port, _):
        def enough(ms):
            reconnected = any(m["type"] == "status" and m["event"] == "reconnecting" for m in ms)
            after = [m for m in ms if m["type"] == "prediction" and m["title"] == "Test Artist - Song 2"]
            return reconnected and len(after) >= 2

        got = collect(port, enough, timeout=30)
    preds = predictions(got)
    events = [m["event"] for _, m in got if m["type"] == "status"]
    assert "reconnecting" in events
    assert any(p["title"] == "Test Artist - Song 1" for p in preds)
    assert sum(p["title"] == "Test Artist - Song 2" for p in preds) >= 2
    assert Radio.connections >= 2


def test_a_format_change_and_garbled_bytes_mid_stream_neither_end_nor_stall_it(tmp_path):
    """The radio switches from 44.1 kHz stereo to 22.05 kHz mono, with 64 garbled bytes before the switch: the
    stream plays through both (no reconnect), the bad bytes skipped and counted."""
    stereo = write_audio(tmp_path / "a.mp3", np.stack([synth_music(12, 44100, seed=1)] * 2, axis=1), 44100)
    mono = write_audio(tmp_path / "b.mp3", synth_music(12, 22050, seed=2), 22050)
    first = bytearray(stereo.read_bytes())
    first[len(first) // 2 : len(first) // 2 + 64] = np.random.default_rng(0).integers(0, 256, 64, np.uint8).tobytes()
    Radio.mp3, Radio.seconds, Radio.connections, Radio.cut_after = bytes(first) + mono.read_bytes(), 24.0, 0, 1e9
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Radio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.mp3"
        with running_daemon(f"radio={url}") as (port, _):
            got = collect(port, lambda ms: len(predictions([(0, m) for m in ms])) >= 13, timeout=40)
    finally:
        server.shutdown()
        Radio.cut_after = 5.0
    preds = predictions(got)
    events = [m["event"] for _, m in got if m["type"] == "status"]
    assert len(preds) >= 13 and preds[-1]["time"] > 18  # well into the second, mono half
    assert "reconnecting" not in events and "error" not in events and Radio.connections == 1
    assert events.count("skipped") == 1


def test_the_first_reconnect_waits_one_second():
    with running_daemon("radio=http://127.0.0.1:9/live.mp3") as (_, proc):
        time.sleep(4.5)  # refused at once: reconnecting in 1 s, 2 s, then 4 s
    waits = [line.rsplit(" in ", 1)[1] for line in proc.stdout.read().splitlines() if "reconnecting in" in line]
    assert waits[:2] == ["1 s", "2 s"]  # 1 s, then doubling, as documented


class ProtectedRadio(Radio):
    """The same radio behind HTTP Basic auth (how protected Icecast mounts and relays are reached)."""

    expected = "Basic " + __import__("base64").b64encode(b"relay:s3cr%t").decode()  # user relay, password s3cr%t
    asked: list = []

    def do_GET(self):
        type(self).asked.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="icecast"')
            self.end_headers()
            return
        super().do_GET()


def test_credentials_in_the_url_are_sent_as_basic_auth_and_a_refusal_says_so(tmp_path):
    from streamgenre.sources import MAX_BACKOFF, UrlSource

    path = write_audio(tmp_path / "radio.mp3", synth_music(20, seed=6))
    ProtectedRadio.mp3, ProtectedRadio.seconds, ProtectedRadio.connections = path.read_bytes(), 20.0, 0
    ProtectedRadio.cut_after, ProtectedRadio.asked = 1e9, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), ProtectedRadio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    good, bad = (UrlSource(name, f"http://relay:{password}@127.0.0.1:{port}/live.mp3")
                 for name, password in (("good", "s3cr%25t"), ("bad", "wrong")))
    try:
        for source in (good, bad):
            source.start()
        poll(lambda: good.ring.written >= 22050 and bad.events, timeout=20)
    finally:
        good.stop(), bad.stop(), server.shutdown()
    assert good.ring.written >= 22050 and good.error is None  # audio flows with the right credentials
    assert bad.ring.written == 0 and bad.error == f"{bad.shown}: HTTP 401: the server refused the credentials"
    assert "wrong" not in bad.error and ":***@" in bad.shown  # never the password in a message
    time.sleep(0.5)
    reconnecting = [e["message"] for e in bad.events if e["event"] == "reconnecting"]
    assert reconnecting == [f"{bad.shown}: reconnecting in {MAX_BACKOFF:.0f} s"]  # not every second
    assert ProtectedRadio.expected in ProtectedRadio.asked and None not in ProtectedRadio.asked


def test_a_feed_that_stalls_still_gives_windows_of_what_arrived(radio):
    """6 s of a 30-kbit/s stream without ICY metadata (23 KB, less than the 32 KiB FFmpeg reads at once), then the
    connection stays open and silent: what arrived is classified, and the stall is told."""
    Radio.cut_after, Radio.stall_after, Radio.sends_icy = 1e9, 6.0, False
    with running_daemon(f"radio={radio}") as (port, _):
        got = collect(port, lambda ms: any(m["type"] == "status" and m["event"] == "error" for m in ms), timeout=30)
    Radio.cut_after = 5.0
    assert len(predictions(got)) >= 2  # windows ending at 3 and 4.5 s (the decoder holds the last of the 6 s)
