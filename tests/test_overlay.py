"""The HTTP side of the daemon's port, and the overlay page in a real browser (headless Chromium)."""

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from browser import CHROMIUM, read_page
from conftest import SHARED_MUSIC, poll, synth_music, synth_speech, write_audio
from daemon import running_daemon


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_http_routes(music_file, tmp_path):
    with running_daemon(f"song={music_file}", f"gone={tmp_path / 'missing.wav'}") as (port, _):
        status, kind, page = get(port, "/overlay?stream=song&theme=dark")
        assert status == 200 and kind.startswith("text/html") and "new WebSocket" in page
        assert "http://" not in page.replace("location.protocol", "") and "https://" not in page  # nothing external
        assert get(port, "/")[2] == page
        now = poll(lambda: json.loads(get(port, "/api/now")[2]), lambda now: now["song"], every=0.2)
        assert now["song"]["type"] == "prediction" and now["song"]["genre"] and now["gone"] is None
        status, _, health = get(port, "/healthz")
        assert status == 503 and "gone" in health and "no such file" in health
        status, kind, metrics = get(port, "/metrics")
        assert status == 200 and kind.startswith("text/plain")
        for name in ('streamgenre_windows_total{stream="song"}', "streamgenre_latency_seconds_bucket",
                     "streamgenre_engine_batch_size_count", "streamgenre_clients",
                     'streamgenre_source_up{stream="gone"} 0.0', "streamgenre_audio_overwritten_samples_total"):
            assert name in metrics
        for path in ("/nope", "/../../etc/passwd", "/assets/overlay.html", "/streamgenre/assets/__init__.py"):
            assert get(port, path)[0] == 404


def test_healthz_is_ok_while_every_source_delivers(music_file):
    with running_daemon(f"song={music_file}") as (port, _):
        time.sleep(1.0)
        assert get(port, "/healthz")[:3:2] == (200, "ok\n")


@pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (apt-get install chromium)")
def read_overlay(port: int, query: str, ready, attempts: int = 100) -> tuple[dict, bytes]:
    """The overlay page in headless Chromium: its genre, confidence, status and bars once ready(state), and a
    screenshot (after the bars' transition)."""
    return read_page(f"http://127.0.0.1:{port}/overlay?{query}", """{
        genre: document.getElementById('genre').textContent,
        confidence: document.getElementById('confidence').textContent,
        status: document.getElementById('status').textContent,
        bars: [...document.querySelectorAll('.track')].map(t => [t.dataset.genre,
              parseFloat(t.firstChild.style.width)])}""", ready, attempts)


def test_overlay_shows_live_genre_and_bars_in_chromium(music_file):
    """Set STREAMGENRE_SCREENSHOT=docs/overlay.png to refresh the README's picture (real music from ../shared)."""
    screenshot = os.environ.get("STREAMGENRE_SCREENSHOT")
    source = next((p for p in SHARED_MUSIC if "Hungarian" in p.name), music_file) if screenshot else music_file
    with running_daemon(f"song={source}") as (port, _):
        state, png = read_overlay(port, "stream=song&theme=dark&bars=5",
                                  lambda state: len(state.get("bars", [])) == 5 and state["genre"] != "…")
        now = json.loads(get(port, "/api/now")[2])["song"]
    assert state["genre"] in now["average"]
    assert len(state["bars"]) == 5 and state["bars"][0][0] == state["genre"]
    widths = [w for _, w in state["bars"]]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    if screenshot:
        Path(screenshot).write_bytes(png)


def test_overlay_says_talk_instead_of_a_genre(tmp_path):
    talk = write_audio(tmp_path / "talk.wav", synth_speech(20.0, seed=8))
    with running_daemon(f"news={talk}") as (port, _):
        state, _ = read_overlay(port, "stream=news", lambda state: state["genre"] != "…")
        now = json.loads(get(port, "/api/now")[2])["news"]
    assert now["content"] == "speech" and now["genre"] is None
    assert state["genre"] == "TALK" and "% speech" in state["confidence"] and "news" in state["confidence"]


def test_overlay_shows_the_current_state_at_once_and_picks_a_live_stream(tmp_path):
    """A file that ended sends no new window: the overlay still shows its last state (from /api/now). Without
    ?stream= it follows a live stream, not the first configured one that ended; a misspelt name says so."""
    short = write_audio(tmp_path / "short.wav", synth_music(4.0, seed=10))
    long = write_audio(tmp_path / "long.wav", synth_music(40.0, seed=11))
    with running_daemon(f"short={short}", f"long={long}", "--once") as (port, _):
        poll(lambda: json.loads(get(port, "/api/now")[2])["long"], timeout=20, every=0.2)
        time.sleep(2.0)  # short's one window is long sent and the file has ended
        ended, _ = read_overlay(port, "stream=short", lambda state: state["genre"] != "…")
        picked, _ = read_overlay(port, "", lambda state: state["genre"] != "…")
        misspelt, _ = read_overlay(port, "stream=shrot", lambda state: "no stream" in state["status"], attempts=25)
    assert ended["genre"] not in ("…", "") and "short" in ended["confidence"]
    assert "long" in picked["confidence"]
    assert misspelt["genre"] == "…" and misspelt["status"] == "no stream named shrot (streams: short, long)"
