"""The daemon end to end: real files, a real WebSocket client, real misbehaving clients and sources."""

import asyncio
import os
import signal
import socket
import subprocess
import sys

import urllib.request

import numpy as np
import pytest
import soundfile
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
import json
import time

from conftest import synth_music, write_audio
from daemon import collect, gather, http_get, predictions, running_daemon
from streamgenre.model import SHIPPED, load_model
from streamgenre.server import BACKLOG, Broadcaster

PREDICTION_KEYS = {"type", "stream", "seq", "time", "latency_ms", "probabilities", "average", "content",
                   "content_probabilities", "genre", "confidence", "dead_air", "level_db", "title"}


@pytest.mark.parametrize("model", SHIPPED)
def test_file_in_real_time_gives_hello_then_a_prediction_every_1_49_s(music_file, model):
    """Once per shipped model: the same protocol and rhythm (each model's own step), the model named."""
    loaded = load_model(model)
    with running_daemon(f"song={music_file}", "--model", model) as (port, _):
        got = collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 5, timeout=20)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert f'streamgenre_model_info{{engine="onnx",frontend="cpu",model="{loaded.name}"}} 1.0' in metrics
    hello = got[0][1]
    assert hello["type"] == "hello" and hello["version"] == 1 and len(hello["genres"]) == 10
    assert hello["model"] == loaded.name and loaded.path.name == SHIPPED[model]
    assert hello["streams"] == [{"name": "song", "kind": "file", "error": None, "ended": False}]
    preds = predictions(got)
    assert len(preds) >= 5
    for p in preds:
        assert set(p) == PREDICTION_KEYS
        assert p["genre"] in hello["genres"] and abs(sum(p["probabilities"].values()) - 1) < 1e-3
        assert p["confidence"] == max(p["average"].values()) and p["latency_ms"] < 500
    assert [p["seq"] for p in preds] == list(range(preds[0]["seq"], preds[0]["seq"] + len(preds)))
    step = loaded.params.step_seconds  # 128 frames of 256 samples at 22050 Hz, or 93 of 256 at 16000 Hz
    assert abs(step - 1.487) < 0.002
    assert np.allclose(np.diff([p["time"] for p in preds]), step, atol=1e-3)
    arrivals = [t for t, m in got if m["type"] == "prediction"]
    assert np.allclose(np.diff(arrivals), step, atol=0.35)  # paced like live audio


def test_bad_sources_and_clients_do_not_stop_the_others(tmp_path, music_file):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio" * 1000)
    silence = write_audio(tmp_path / "silence.wav", np.zeros(22050 * 10, np.float32))
    low = tmp_path / "low.wav"
    soundfile.write(low, np.stack([synth_music(10, rate=8000)] * 2, axis=1), 8000)  # 8 kHz stereo
    args = [f"good={music_file}", f"missing={tmp_path / 'nope.wav'}", f"junk={junk}", f"silence={silence}",
            f"low={low}", "unreachable=http://127.0.0.1:9/stream.mp3"]
    with running_daemon(*args) as (port, proc):

        async def misbehave_then_listen():
            idle = await connect(f"ws://127.0.0.1:{port}")  # connects, never reads, stays connected
            async with connect(f"ws://127.0.0.1:{port}") as rude:
                for junk_message in ["garbage", "{}", '{"subscribe": 5}', "[1, 2]", b"\x00\xff"]:
                    await rude.send(junk_message)
            got = await gather(port, lambda ms: {"good", "silence", "low"} <= {
                m.get("stream") for m in ms if m["type"] == "prediction"}, timeout=20)
            await idle.close()
            return got

        got = asyncio.run(misbehave_then_listen())
        assert proc.poll() is None
    hello = got[0][1]
    errors = {s["name"]: s["error"] for s in hello["streams"]}
    assert "no such file" in errors["missing"]
    statuses = [m for _, m in got if m["type"] == "status"]
    problems = {m["stream"] for m in statuses if m["event"] in ("error", "reconnecting")}
    assert {"junk", "unreachable"} <= problems | {n for n, e in errors.items() if e}
    assert errors["good"] is None


def test_subscribe_filters_streams(music_file, tmp_path):
    other = write_audio(tmp_path / "other.wav", synth_music(10, seed=3))
    with running_daemon(f"a={music_file}", f"b={other}") as (port, _):
        got = collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 4, timeout=15,
                      send=[{"subscribe": ["b"]}])
    assert {p["stream"] for p in predictions(got)} == {"b"}


def test_config_file_and_clear_errors(tmp_path, music_file):
    config = tmp_path / "streamgenre.toml"
    config.write_text(f'average = "ema:10"\n[[source]]\nname = "desk"\nfile = "{music_file}"\n')
    with running_daemon("--config", str(config)) as (port, _):
        got = collect(port, lambda ms: len(predictions([(0, m) for m in ms])) >= 1, timeout=10)
    assert predictions(got)[0]["stream"] == "desk"
    for args, message in ((["--average", "last:0", str(music_file)], "use last:N"),
                          (["device=device:no-such-card"], "no input device"),
                          ([], "no sources")):
        run = subprocess.run([sys.executable, "-m", "streamgenre", "serve", *args], capture_output=True, text=True,
                             timeout=30)
        assert run.returncode != 0 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_systemd_notify_ready_watchdog_and_clean_stop(tmp_path, music_file):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(20)
    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="1000000")
    with running_daemon(str(music_file), env=env) as (_, proc):
        assert listener.recv(100) == b"READY=1"
        assert listener.recv(100) == b"WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        while (state := listener.recv(100)) == b"WATCHDOG=1":
            pass
        assert state == b"STOPPING=1"
    listener.close()


def test_a_client_that_never_reads_loses_its_oldest_messages_not_the_others():
    async def run():
        broadcaster = Broadcaster(lambda: {"type": "hello"})
        broadcaster.loop = asyncio.get_running_loop()
        async with serve(broadcaster.handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            stalled = socket.socket()  # a raw client: handshakes, then never reads again
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", port))
            stalled.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            async with connect(f"ws://127.0.0.1:{port}", max_queue=None) as reader:
                await reader.recv()
                await asyncio.sleep(0.1)
                sent = BACKLOG + 3000
                for seq in range(sent):  # 50 MB: far more than the socket buffers of the stalled client hold
                    broadcaster.publish({"type": "prediction", "stream": "s", "seq": seq, "pad": "x" * 7_000})
                    if seq % 100 == 0:
                        await asyncio.sleep(0)
                got = [json.loads(await asyncio.wait_for(reader.recv(), 5))["seq"] for _ in range(sent)]
            slow = max(broadcaster.clients, key=broadcaster.dropped)  # the reader may not have left yet
            dropped, behind = broadcaster.dropped(slow), broadcaster.published - slow.cursor
            stalled.close()
            await asyncio.sleep(0.2)
        return got, dropped, behind, broadcaster.dropped_total

    got, dropped, behind, total = asyncio.run(run())
    assert got == list(range(BACKLOG + 3000))  # the reading client got everything, in order
    assert dropped > 2000 and behind - dropped == BACKLOG  # the stalled one lost the oldest, counted, and is due
    assert total == dropped  # the newest BACKLOG; once it has left, its losses stay counted

def test_a_file_among_live_streams_loops_and_an_ended_file_is_no_failure(tmp_path):
    """`serve` plays files again and again in real time (the README's jingles); with --once a file ends, and
    /healthz does not call that a failure."""
    jingle = write_audio(tmp_path / "jingle.wav", synth_music(4.0, seed=9))
    with running_daemon(f"jingles={jingle}") as (port, _):
        got = collect(port, lambda ms: sum(m["type"] == "status" and m["event"] == "looped" for m in ms) >= 2,
                      timeout=20)
        looping = http_get(port, "/healthz")
    assert [m["event"] for _, m in got if m["type"] == "status"].count("looped") >= 2
    assert predictions(got, "jingles")[-1]["time"] > 6.0 and looping[0] == 200  # past the first end
    with running_daemon(f"jingles={jingle}", "--once") as (port, _):
        got = collect(port, lambda ms: any(m["type"] == "status" and m["event"] == "ended" for m in ms), timeout=20)
        time.sleep(0.5)
        ended = http_get(port, "/healthz")
    assert "looped" not in [m["event"] for _, m in got if m["type"] == "status"]
    assert ended[0] == 200, ended
