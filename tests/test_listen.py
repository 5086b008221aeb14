"""`streamgenre listen --file` draws its live view in a real terminal (a pseudo-terminal)."""

import re
import sys

import pexpect

from conftest import synth_music, synth_speech, write_audio


def test_listen_file_draws_bars_in_a_terminal(tmp_path):
    path = write_audio(tmp_path / "tune.wav", synth_music(6.5, seed=2))
    term = pexpect.spawn(sys.executable, ["-m", "streamgenre", "listen", "--file", str(path)], dimensions=(40, 120),
                         timeout=30, encoding="utf-8")
    term.expect("waiting for the first window")
    term.expect(r"now    ([A-Z]+)  (\d\.\d\d)")
    genre = term.match.group(1).lower()
    term.expect(pexpect.EOF)
    screen = term.before
    term.close()
    assert term.exitstatus == 0
    last = screen.rsplit("\x1b[H\x1b[2J", 1)[-1]
    bars = re.findall(r"^ *(\w+) ([█░]{40}) +(\d\.\d\d)\r?$", last, re.M)
    assert len(bars) == 10 and genre in [b[0] for b in bars]
    assert abs(sum(float(b[2]) for b in bars) - 1) <= 10 * 0.005 + 1e-9  # ten figures, each rounded by up to 0.005
    assert "streamgenre  tune (file)" in last and "dBFS" in last and "window 3 at" in last


def test_listen_says_talk_for_speech(tmp_path):
    path = write_audio(tmp_path / "news.wav", synth_speech(6.5, seed=2))
    term = pexpect.spawn(sys.executable, ["-m", "streamgenre", "listen", "--file", str(path)], dimensions=(40, 120),
                         timeout=30, encoding="utf-8")
    term.expect(r"now    TALK   \(speech (\d\.\d\d)  music (\d\.\d\d)  noise (\d\.\d\d)\)")
    speech, music, noise = map(float, term.match.groups())
    term.expect(pexpect.EOF)
    term.close()
    assert term.exitstatus == 0 and speech > max(music, noise)


def test_listen_says_connecting_until_a_stream_delivers():
    """A stream that has not delivered yet is "connecting", not a silent -120 dBFS feed."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []  # the accepted connection, kept open (and silent) until the test ends
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/live.mp3"
    term = pexpect.spawn(sys.executable, ["-m", "streamgenre", "listen", "--url", url], dimensions=(40, 120),
                         timeout=30, encoding="utf-8")
    try:
        term.expect(f"status connecting to {url} ...")
    finally:
        term.terminate(force=True)
        for connection, _ in held:
            connection.close()
        server.close()
