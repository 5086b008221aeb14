"""An MP3 Icecast-style stream from a local HTTP server, cut mid-stream: the daemon reconnects and goes on."""

import http.server
import socket
import threading
import time

import pytest

from conftest import synth_music, write_audio
from daemon import collect, free_port, predictions, running_daemon

METAINT = 4096


class Radio(http.server.BaseHTTPRequestHandler):
    """Plays an MP3 at real-time pace with ICY titles; the first connection is cut after `cut_after` seconds."""

    mp3: bytes = b""
    seconds: float = 1.0
    cut_after: float = 5.0
    connections = 0

    def do_GET(self):
        type(self).connections += 1
        first = type(self).connections == 1
        icy = self.headers.get("Icy-MetaData") == "1"
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
    Radio.mp3, Radio.seconds, Radio.connections = path.read_bytes(), 40.0, 0
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
