"""The dashboard (/dashboard) in headless Chromium, at a phone's size: every stream with what it airs, its source's
state and its timeline from the genre log; under the same access rules as the overlay."""

import json
import os
from pathlib import Path

import pytest

from browser import CHROMIUM, read_page
from conftest import SHARED_MUSIC, poll, synth_music, synth_speech, write_audio
from daemon import http_get, running_daemon

pytestmark = pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (apt-get install chromium)")

CARDS = """{status: document.getElementById('status').textContent,
  cards: [...document.querySelectorAll('.stream')].map(c => ({name: c.dataset.stream,
    now: c.querySelector('.now').textContent, source: c.querySelector('.source').textContent,
    detail: c.querySelector('.detail').textContent,
    problem: c.classList.contains('problem'), spans: c.querySelectorAll('.timeline span').length}))}"""


def test_the_dashboard_shows_every_stream_live_with_its_timeline(tmp_path):
    """Set STREAMGENRE_SCREENSHOT=docs/dashboard.png to refresh the README's picture (real music from ../shared)."""
    screenshot = os.environ.get("STREAMGENRE_SCREENSHOT")
    songs = SHARED_MUSIC[:3] if screenshot and len(SHARED_MUSIC) >= 3 else \
        [write_audio(tmp_path / f"{i}.wav", synth_music(30.0, seed=20 + i)) for i in range(3)]
    talk = write_audio(tmp_path / "talk.wav", synth_speech(30.0, seed=9))
    names = ["studio", "jazz.fm", "night", "news"]
    specs = [f"{n}={p}" for n, p in zip(names, [*songs, talk])] + [f"backup={tmp_path / 'missing.ogg'}"]
    with running_daemon(*specs) as (port, _):
        def logged() -> bool:  # /api/history says 503 until the log's file is made
            status, history = http_get(port, "/api/history?stream=news")
            return status == 200 and bool(json.loads(history)["segments"])

        now = poll(lambda: json.loads(http_get(port, "/api/now")[1]),
                   lambda now: all(now[n] for n in names) and logged(), timeout=30, every=0.5)
        state, png = read_page(f"http://127.0.0.1:{port}/dashboard?hours=0.005", CARDS,
                               lambda s: len(s["cards"]) == 5 and all(c["now"] != "…" for c in s["cards"]
                                                                      if c["name"] != "backup")
                               and all(c["spans"] for c in s["cards"] if c["name"] != "backup"),
                               size="412,1400", settle=0.5)
    cards = {c["name"]: c for c in state["cards"]}
    assert list(cards) == names + ["backup"] and state["status"].startswith("live")
    assert cards["news"]["now"] == "talk" and all(cards[n]["now"] in now[n]["average"] for n in names[:3])
    assert all(cards[n]["spans"] >= 1 and cards[n]["source"] == "on air" for n in names)
    assert cards["backup"]["problem"] and cards["backup"]["source"] == "down" and "no such file" in \
        cards["backup"]["detail"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    if screenshot:
        Path(screenshot).write_bytes(png)


def test_the_dashboard_keeps_the_overlays_access_rules(music_file):
    with running_daemon(f"song={music_file}", env=os.environ | {"STREAMGENRE_TOKEN": "s3cret"}) as (port, _):
        assert http_get(port, "/dashboard")[0] == 401
        status, page = http_get(port, "/dashboard?token=s3cret")
    assert status == 200 and "new WebSocket" in page and "https://" not in page and "http://" not in page
