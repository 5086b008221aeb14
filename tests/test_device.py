"""A real input device: a PulseAudio null sink fed with music, recorded through PortAudio's ALSA `pulse` device."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import soundfile

from conftest import synth_music
from daemon import collect, predictions, running_daemon

pytestmark = pytest.mark.skipif(not (shutil.which("pulseaudio") and shutil.which("paplay")),
                                reason="PulseAudio is not installed (apt-get install pulseaudio pulseaudio-utils "
                                       "libasound2-plugins)")


@pytest.fixture(scope="module")
def pulse():
    """A private PulseAudio server with a null sink whose monitor is the default input, playing music."""
    runtime = tempfile.mkdtemp()
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime)
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
         "-L", "module-native-protocol-unix auth-anonymous=1",
         "-L", "module-null-sink sink_name=vsink rate=48000 channels=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    subprocess.run(["pactl", "set-default-source", "vsink.monitor"], env=env, check=True)
    music = os.path.join(runtime, "music.wav")
    soundfile.write(music, synth_music(30, rate=48000, seed=7), 48000)
    player = subprocess.Popen(["sh", "-c", f"while true; do paplay -d vsink {music}; done"], env=env)
    yield env
    player.kill()
    server.kill()
    shutil.rmtree(runtime, ignore_errors=True)


def test_devices_lists_the_card(pulse):
    out = subprocess.run([sys.executable, "-m", "streamgenre", "devices"], env=pulse, capture_output=True, text=True)
    assert out.returncode == 0 and "pulse" in out.stdout


def test_serve_from_a_sound_card(pulse):
    with running_daemon("desk=device:pulse", env=pulse) as (port, _):
        got = collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 3, timeout=25)
    assert got[0][1]["streams"] == [{"name": "desk", "kind": "device", "error": None, "ended": False}]
    preds = predictions(got)
    assert len(preds) >= 3 and all(p["stream"] == "desk" for p in preds)
    assert len({tuple(p["probabilities"].values()) for p in preds}) > 1  # it hears changing music, not silence


def test_missing_device_lists_the_ones_there_are(pulse):
    out = subprocess.run([sys.executable, "-m", "streamgenre", "listen", "--device", "no-such-card"], env=pulse,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "no input device named like 'no-such-card' (available: 0: pulse; 1: default" in out.stderr
