"""Dead air (silence, or a constant DC offset) is reported as such, in messages, /api/now and /healthz, never as a
genre; music after it is classified again. Real daemon, real files, a real WebSocket client."""

import http.client
import json
import re

import numpy as np

from conftest import synth_music, write_audio
from daemon import collect, predictions, running_daemon


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read().decode()


def test_silence_and_dc_are_dead_air_and_music_after_them_is_not(tmp_path):
    music = synth_music(6.0, seed=7)
    gap = np.zeros(22050 * 6, np.float32)
    write_audio(tmp_path / "show.wav", np.concatenate([gap, music]))  # 6 s of dead air, then music
    write_audio(tmp_path / "dc.wav", np.full(22050 * 20, 0.3, np.float32))  # an offset, no sound
    config = tmp_path / "streamgenre.toml"
    config.write_text("silence_db = -50.0\ndead_air_seconds = 2.0\n"
                      f'[[source]]\nname = "show"\nfile = "{tmp_path / "show.wav"}"\n'
                      f'[[source]]\nname = "dc"\nfile = "{tmp_path / "dc.wav"}"\n')
    with running_daemon("--config", str(config)) as (port, _):
        got = collect(port, lambda ms: any(not m["dead_air"] for m in predictions([(0, m) for m in ms], "show")),
                      timeout=20)
        health, now = get(port, "/healthz"), json.loads(get(port, "/api/now")[1])
        metrics = get(port, "/metrics")[1]
    lengths = dict(re.findall(r'^streamgenre_dead_air_seconds\{stream="(\w+)"\} (\S+)', metrics, re.M))
    assert float(lengths["dc"]) > 2.0 and float(lengths["show"]) == 0.0  # what the dead-air alert reads
    show, dc = predictions(got, "show"), predictions(got, "dc")
    silent = [p for p in show if p["dead_air"]]
    assert silent and all(p["genre"] is None and p["confidence"] is None and p["level_db"] < -50 for p in silent)
    assert show[-1]["genre"] is not None and show[-1]["level_db"] > -40 and show[-1]["confidence"] > 0
    assert dc and all(p["dead_air"] and p["genre"] is None for p in dc)
    assert now["dc"]["dead_air"] is True
    assert health[0] == 503 and "dc: dead air (below -50 dBFS) for" in health[1] and "show:" not in health[1]
