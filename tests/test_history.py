"""The genre log: segments cut from predictions, a real SQLite file (and a real PostgreSQL server where one can be
started), the real daemon writing it, `/api/history` and `streamgenre report` reading it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import SHARED_MUSIC, poll, synth_music, write_audio
from daemon import collect, free_port, http_get, predictions, running_daemon
from streamgenre.audio import load_audio
from streamgenre.backends import create_engine
from streamgenre.frontend import PAPER, Frontend
from streamgenre.history import HistoryError, open_store
from streamgenre.history.report import clipped, parse_time, summarize
from streamgenre.content import KINDS, MUSIC, SILENCE
from streamgenre.history.segments import Segmenter, Window
from streamgenre.history.store import SCHEMA_VERSION, read_segments
from streamgenre.model import load_model

STEP = PAPER.step_seconds


def cut(labels: list[str], hold: float = 3.0, titles: list | None = None, ends: list | None = None) -> list:
    """The segments of windows with these labels, one every STEP seconds (or at `ends`)."""
    segmenter = Segmenter("s", hold)
    for i, label in enumerate(labels):
        end = ends[i] if ends else STEP * (i + 1)
        kind, genre = (label, None) if label in KINDS else (MUSIC, label)
        segmenter.add(Window(end, STEP, kind, genre, 0.5 if genre else None, titles[i] if titles else None))
    segmenter.close()
    return sorted(segmenter.take_changed(), key=lambda s: s.start)


def test_an_odd_window_does_not_split_a_song():
    [song] = cut(["rock"] * 5 + ["pop"] + ["rock"] * 5)
    assert (song.genre, song.windows, song.confident_windows, song.closed) == ("rock", 11, 10, True)
    assert song.start == 0 and song.end == pytest.approx(11 * STEP) and song.confidence == 0.5


def test_a_change_that_holds_is_cut_where_it_began():
    rock, pop = cut(["rock"] * 5 + ["pop"] * 3)  # 3 windows of pop: 4.5 s, past the 3-s hold
    assert (rock.genre, rock.start, rock.end) == ("rock", 0, pytest.approx(5 * STEP))
    assert (pop.genre, pop.start, pop.end) == ("pop", pytest.approx(5 * STEP), pytest.approx(8 * STEP))


def test_dead_air_titles_and_gaps_make_segments_of_their_own():
    segments = cut(["rock"] * 3 + [SILENCE] * 3 + ["rock"] * 4, titles=[None] * 6 + ["A - One"] * 2 + ["B - Two"] * 2)
    assert [(s.kind, s.genre, s.title, s.windows) for s in segments] == [
        ("music", "rock", None, 3), ("silence", None, None, 3), ("music", "rock", "A - One", 2),
        ("music", "rock", "B - Two", 2)]
    before, after = cut(["jazz"] * 4, ends=[STEP, 2 * STEP, 10 * STEP, 11 * STEP])  # an outage between
    assert before.end == pytest.approx(2 * STEP) and after.start == pytest.approx(9 * STEP)


def test_segments_tile_the_time_served():
    rng = np.random.default_rng(0)
    labels = list(rng.choice(["rock", "pop", "jazz", SILENCE, "speech"], size=400, p=[0.5, 0.2, 0.15, 0.05, 0.1]))
    segments = cut(labels, hold=2.0)
    assert len(segments) > 10 and sum(s.windows for s in segments) == 400
    assert segments[0].start == 0 and segments[-1].end == pytest.approx(400 * STEP)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(segments, segments[1:]))


def test_the_sqlite_schema_is_versioned_and_rows_are_updated_in_place(tmp_path):
    path = tmp_path / "h.sqlite3"
    store = open_store(str(path))
    [segment] = cut(["rock"] * 4)
    store.write([segment.row() | {"closed": False}], [])
    segment.end += 10
    store.write([segment.row()], [])
    [row] = store.segments()
    assert row["end_time"] == segment.end and row["closed"] is True and row["genre"] == "rock"
    assert store.delete_before(segment.end + 1) == 1 and store.segments() == []
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(HistoryError, match="version 99 is newer"):
        open_store(str(path))


def version_1_database(store) -> None:
    """Make `store`'s database what streamgenre wrote before the content stage (schema 1), with a song and dead air."""
    from streamgenre.history.store import MIGRATIONS

    with store.transaction() as cursor:
        for statement in MIGRATIONS[1]:
            cursor.execute(statement)
        cursor.execute("INSERT INTO schema_version (version) VALUES (1)")
        for i, (kind, genre) in enumerate([("genre", "rock"), ("dead_air", None)]):
            cursor.execute(store.sql("INSERT INTO segments (id, stream, kind, genre, start_time, end_time, confidence, "
                                     "windows, title, closed) VALUES (%(id)s, 's', %(kind)s, %(genre)s, %(start)s, "
                                     "%(end)s, NULL, 3, NULL, TRUE)"),
                           {"id": f"old{i}", "kind": kind, "genre": genre, "start": 10.0 * i, "end": 10.0 * i + 10})


def assert_migrated(store) -> None:
    """The old rows as music and silence, and the new kinds taken."""
    assert store.version() == SCHEMA_VERSION == 2
    assert [(r["kind"], r["genre"]) for r in store.segments()] == [("music", "rock"), ("silence", None)]
    [talk] = cut(["speech"] * 4)
    store.write([talk.row()], [])
    assert sorted(r["kind"] for r in store.segments()) == ["music", "silence", "speech"]
    bad = talk.row() | {"id": "x", "kind": "genre"}  # the old kind is refused now
    with pytest.raises(Exception):
        store.write([bad], [])


def test_a_database_from_before_the_content_stage_is_migrated(tmp_path):
    from streamgenre.history.sqlite import SqliteStore

    path = tmp_path / "old.sqlite3"
    old = SqliteStore(path)
    version_1_database(old)
    old.close()
    store = open_store(str(path))
    assert_migrated(store)
    store.close()
    run = report("--history", path, "--stream", "s")
    assert run.returncode == 0 and run.stdout.splitlines()[0] == "s: music 39 %: rock 39 %, dead air 39 %, talk 23 %"


def test_times_are_read_as_a_station_writes_them():
    assert parse_time("1795000000") == 1795000000
    assert parse_time("2026-11-27T14:00:00Z") == 1795788000
    assert parse_time("-2h") == pytest.approx(time.time() - 7200, abs=5)
    assert 23 * 3600 <= parse_time("today") - parse_time("yesterday") <= 25 * 3600  # daylight saving: 23 to 25 h
    with pytest.raises(ValueError, match="not a time"):
        parse_time("last tuesday")


# --- the daemon writing it ---

def config(tmp_path: Path, history: str, average: str = "last:10", hold: float = 3.0, windows: bool = False) -> Path:
    path = tmp_path / "streamgenre.toml"
    path.write_text(f'average = "{average}"\nhistory = "{history}"\nhistory_hold_seconds = {hold}\n'
                    f'history_windows = {str(windows).lower()}\n')
    return path


def report(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamgenre", "report", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def two_pieces(seconds: float = 12.0) -> tuple[np.ndarray, list[str]]:
    """Two stretches of real music that the shipped model gives two different genres, window after window, also
    once played one after the other (the windows that straddle the change aside)."""
    model, frontend = load_model(), Frontend()
    engine, n = create_engine(model, "onnx"), int(seconds * PAPER.sample_rate)
    whole = int((seconds - PAPER.window_seconds) / STEP) + 1  # windows inside one stretch
    found = []
    for path in SHARED_MUSIC:
        x = load_audio(path)
        labels = engine.infer(frontend.file_windows(x)).argmax(1)
        for i in range(len(labels) - whole + 1):  # the first run of `whole` windows of one genre not yet found
            if (labels[i : i + whole] == labels[i]).all() and all(labels[i] != f[0] for f in found):
                found.append((labels[i], x[i * PAPER.step_samples : i * PAPER.step_samples + n]))
                break
        if len(found) == 2:
            both = np.concatenate([found[0][1], found[1][1]])
            labels = engine.infer(frontend.file_windows(both)).argmax(1)
            if (labels[:whole] == found[0][0]).all() and (labels[-whole + 1 :] == found[1][0]).all():
                return both, [model.genres[found[0][0]], model.genres[found[1][0]]]
            found.pop()
    pytest.skip("no two stretches of ../shared/data/music that the model tells apart window after window")


@pytest.mark.skipif(not SHARED_MUSIC, reason="../shared/data/music is not here")
def test_two_pieces_one_after_the_other_are_two_segments_cut_at_the_change(tmp_path):
    audio, genres = two_pieces()
    song = tmp_path / "two.wav"
    soundfile.write(song, audio, PAPER.sample_rate, subtype="FLOAT")
    history = tmp_path / "h.sqlite3"
    windows = 1 + (len(audio) - PAPER.window_samples) // PAPER.step_samples
    every_window = f'streamgenre_windows_total{{stream="two"}} {windows}.0'  # --fast: by the recording's own clock
    with running_daemon(f"two={song}", "--fast", "--config", config(tmp_path, str(history), average="last:1")) as (
            port, proc):
        metrics = poll(lambda: http_get(port, "/metrics")[1], lambda m: every_window in m, timeout=45, every=0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert every_window in metrics
    first, second = read_segments(str(history))
    assert (first["genre"], second["genre"]) == tuple(genres) and first["closed"] and second["closed"]
    assert abs(second["start_time"] - first["start_time"] - 12.0) <= PAPER.window_seconds  # to a window
    assert first["end_time"] == pytest.approx(second["start_time"], abs=0.2)  # no gap, no overlap


def test_kill_9_leaves_a_database_that_opens_and_holds_all_but_the_last_seconds(tmp_path, music_file):
    history = tmp_path / "h.sqlite3"
    with running_daemon(f"song={music_file}", "--history", str(history)) as (port, proc):
        collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 4, timeout=20)
        killed = time.time()
        proc.kill()
        proc.wait(timeout=10)
    with sqlite3.connect(history) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    [segment] = read_segments(str(history))
    assert segment["closed"] is False  # it was open when the daemon died
    assert killed - segment["end_time"] < 4.0 and segment["windows"] >= 2  # all but the last few seconds
    assert report("--history", history).returncode == 0
    with running_daemon(f"song={music_file}", "--history", str(history)) as (port, proc):  # the next start
        collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 2, timeout=20)
        time.sleep(1.5)  # a flush
        proc.kill()
        proc.wait(timeout=10)
    leftover = next(s for s in read_segments(str(history)) if s["id"] == segment["id"])
    assert leftover["closed"] is True and leftover["end_time"] == segment["end_time"]  # closed where it ended


def test_a_clean_stop_closes_every_segment_and_the_report_adds_up(tmp_path, music_file):
    silence = write_audio(tmp_path / "silence.wav", np.zeros(20 * 22050, np.float32))
    history = tmp_path / "h.sqlite3"
    settings = config(tmp_path, str(history), windows=True)
    with running_daemon(f"song={music_file}", f"quiet={silence}", "--config", settings) as (port, proc):
        got = collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 10, timeout=30)
        status, body = http_get(port, "/api/history?stream=song&since=-1h")
        bad_status, bad_body = http_get(port, "/api/history?since=tomorrowish")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert status == 200 and {s["stream"] for s in json.loads(body)["segments"]} == {"song"}
    assert bad_status == 400 and "not a time" in bad_body
    segments = read_segments(str(history))
    assert segments and all(s["closed"] for s in segments)
    assert {s["kind"] for s in segments if s["stream"] == "quiet"} == {SILENCE}
    with sqlite3.connect(history) as db:  # every window's probabilities too, as asked
        rows = db.execute("SELECT stream, probabilities FROM windows WHERE stream = 'song'").fetchall()
    assert len(rows) >= len(predictions(got, "song")) and len(json.loads(rows[0][1])) == 10
    run = report("--history", history, "--format", "json", "--plot", tmp_path / "aired.png")
    assert run.returncode == 0, run.stderr
    streams = json.loads(run.stdout)["streams"]
    for name in ("song", "quiet"):
        sent = len(predictions(got, name))
        served = streams[name]["served_seconds"]
        assert served == pytest.approx(sum(a["seconds"] for a in streams[name]["airtime"].values()), abs=0.01)
        assert sent >= 4 and (sent + 1) * STEP - 0.5 <= served <= (sent + 3) * STEP  # the windows, to a few
    assert streams["quiet"]["dead_air_seconds"] == streams["quiet"]["served_seconds"]
    assert (tmp_path / "aired.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = report("--history", history, "--stream", "quiet").stdout.splitlines()
    assert table[0] == "quiet: dead air 100 %" and table[2].split() == ["stream", "airtime", "minutes", "%"]
    assert table[3].split()[1:3] == ["dead", "air"]
    csv = report("--history", history, "--format", "csv", "--since", "-1h").stdout.splitlines()
    assert csv[0] == "stream,kind,genre,seconds,minutes,percent" and len(csv) >= 3


def test_a_history_that_cannot_be_written_is_reported_and_classifying_goes_on(tmp_path, music_file):
    (tmp_path / "a-file").write_text("not a folder")
    with running_daemon(f"song={music_file}", "--history", str(tmp_path / "a-file" / "h.sqlite3")) as (port, proc):
        got = collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 3, timeout=20)
        status, health = http_get(port, "/healthz")
        _, metrics = http_get(port, "/metrics")
    assert len(predictions(got)) >= 3
    assert status == 503 and "history: " in health and "cannot open the history database" in health
    assert "streamgenre_history_ok 0.0" in metrics and "streamgenre_history_errors_total 0.0" not in metrics


def test_report_errors_are_one_line(tmp_path):
    run = report("--history", tmp_path / "none.sqlite3")
    assert run.returncode == 2 and run.stderr.strip().endswith("no history there (the daemon writes it; see --history)")
    open_store(str(tmp_path / "h.sqlite3")).close()
    run = report("--history", tmp_path / "h.sqlite3", "--since", "soon")
    assert run.returncode == 2 and "not a time" in run.stderr and run.stderr.count("\n") == 1
    assert clipped([{"start_time": 0.0, "end_time": 10.0}], 4.0, 6.0) == [{"start_time": 4.0, "end_time": 6.0}]
    assert summarize([]) == {}
    run = report("--history", tmp_path / "h.sqlite3", "--since", "yesterday", "--until", "today")
    assert run.returncode == 1 and "no segments between" in run.stderr and "the log is empty" in run.stderr


def test_report_reads_a_database_on_a_read_only_filesystem(tmp_path):
    """The log copied to a read-only mount (a backup, a snapshot): `report` opens it read-only and reads it."""
    rw = tmp_path / "rw"
    store = open_store(str(rw / "history.sqlite3"))
    [song] = cut(["rock"] * 4, ends=[1000.0 + STEP * i for i in range(4)])
    store.write([song.row() | {"stream": "radio"}], [])
    store.close()
    ro = tmp_path / "ro"
    ro.mkdir()
    script = (f"mount --bind {rw} {ro} && mount -o remount,bind,ro {ro} && touch {ro}/probe 2>/dev/null && exit 3; "
              f"{sys.executable} -m streamgenre report --history {ro}/history.sqlite3 --since 0 --format json")
    run = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    if run.returncode != 0 and "unshare" in run.stderr and "Operation not permitted" in run.stderr:
        pytest.skip(f"no mount namespace here (needs root): {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert [s["genre"] for s in json.loads(run.stdout)["streams"]["radio"]["longest"]] == ["rock"]


def test_an_empty_report_says_so_and_what_the_log_holds(tmp_path):
    store = open_store(str(tmp_path / "h.sqlite3"))
    [song] = cut(["rock"] * 4, ends=[time.time() - 60 + STEP * i for i in range(4)])
    store.write([song.row() | {"stream": "radio1"}], [])
    store.close()
    run = report("--history", tmp_path / "h.sqlite3", "--since", "yesterday", "--until", "today")  # today is left out
    assert run.returncode == 1 and run.stdout == ""
    assert "no segments between" in run.stderr and "(the log has: radio1 " in run.stderr
    run = report("--history", tmp_path / "h.sqlite3", "--stream", "radoi1")
    assert run.returncode == 1 and "no segments of 'radoi1'" in run.stderr and "radio1" in run.stderr
    assert report("--history", tmp_path / "h.sqlite3", "--since", "today").returncode == 0


# --- PostgreSQL, a real server ---

@contextlib.contextmanager
def postgres_server():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (run as the `postgres` user when the tests run as root)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    initdb = shutil.which("initdb") or (str(binaries[-1] / "initdb") if binaries else None)
    if not initdb:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pg_ctl = str(Path(initdb).resolve().parent / "pg_ctl")
    as_user = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="streamgenre-pg-"))
    folder.chmod(0o755)
    if as_user:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    try:
        for command in ([initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                        [pg_ctl, "-D", data, "-w", "-l", folder / "log", "-o", f"-p {port} -h 127.0.0.1 -k {folder}",
                         "start"]):
            run = subprocess.run(as_user + list(map(str, command)), capture_output=True, text=True, timeout=60)
            if run.returncode:
                pytest.skip(f"PostgreSQL did not start: {(run.stderr or run.stdout).strip().splitlines()[-1]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_postgresql_database_from_before_the_content_stage_is_migrated():
    from streamgenre.history.postgres import PostgresStore

    with postgres_server() as url:
        old = PostgresStore(url)
        version_1_database(old)
        old.close()
        store = open_store(url)
        assert_migrated(store)
        store.close()


def test_postgresql_takes_the_same_log(tmp_path, music_file):
    with postgres_server() as url:
        with running_daemon(f"song={music_file}", "--history", url) as (port, proc):
            collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 3, timeout=20)
            status, body = http_get(port, "/api/history")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        assert status == 200 and json.loads(body)["segments"][0]["stream"] == "song"
        [segment] = read_segments(url)
        assert segment["closed"] is True and segment["windows"] >= 3
        run = report("--history", url, "--format", "json")
        assert run.returncode == 0 and json.loads(run.stdout)["streams"]["song"]["served_seconds"] > 4


def test_fast_logs_a_recording_by_its_own_clock(tmp_path):
    """`serve --fast` reads a 60-s recording in a second or two; its segments still span its 60 s, and its windows,
    far ahead of the audio's own clock, are not late (but for a few of the first, while 31 files fill their rings)."""
    recording = write_audio(tmp_path / "show.wav", np.tile(synth_music(20.0, seed=12), 3))
    history = tmp_path / "h.sqlite3"
    copies = [f"copy{i}={recording}" for i in range(30)]  # the engine behind the files: each waits in its ring
    with running_daemon(f"show={recording}", *copies, "--fast", "--history", str(history)) as (port, proc):
        ended = lambda ms: sum(m["type"] == "status" and m["event"] == "ended" for m in ms) == 31
        collect(port, ended, timeout=90)
        metrics = poll(lambda: http_get(port, "/metrics")[1],  # the rings the files filled are still being classified
                       lambda m: re.findall(r'streamgenre_windows_total\{stream="\w+"\} (\S+)', m) == ["39.0"] * 31,
                       timeout=60, every=0.5)
        time.sleep(1.5)  # the last windows reach the log
        late = [float(n) for n in re.findall(r'streamgenre_late_windows_total\{stream="\w+"\} (\S+)', metrics)]
        assert len(late) == 31 and sum(late) <= 0.1 * 31 * 39  # all 39 of each, before; now the first tick's few
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        output = proc.stdout.read()
    segments = read_segments(str(history), "show")
    served = sum(s["end_time"] - s["start_time"] for s in segments)
    assert 55 <= served <= 61 and "timed by the audio's own clock" in output


def test_a_database_deleted_under_the_daemon_is_noticed_and_written_anew(tmp_path, music_file):
    history = tmp_path / "h.sqlite3"
    with running_daemon(f"song={music_file}", "--history", str(history)) as (port, proc):
        collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 2, timeout=20)
        time.sleep(1.5)  # a flush: the file holds the open segment
        for f in tmp_path.glob("h.sqlite3*"):
            f.unlink()
        collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 2, timeout=20)
        time.sleep(1.5)
        _, metrics = http_get(port, "/metrics")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        output = proc.stdout.read()
    assert "was deleted or replaced while the daemon ran" in output
    assert "streamgenre_history_errors_total 1.0" in metrics
    [segment] = read_segments(str(history))  # the new file holds the song's segment, from its start
    assert segment["closed"] and segment["windows"] >= 4


def test_a_hung_database_never_stalls_the_daemon(tmp_path, music_file):
    """--history pointing at a server that accepts and never answers: /api/history answers 503 in a few seconds,
    and /healthz and the WebSocket are served meanwhile, not after it."""
    import http.client

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # accepted by the kernel, never answered
    url = f"postgresql://nobody@127.0.0.1:{hung.getsockname()[1]}/radio"
    answers = {}
    try:
        with running_daemon(f"song={music_file}", "--history", url) as (port, _):
            collect(port, lambda ms: len([m for m in ms if m["type"] == "prediction"]) >= 1, timeout=20)
            asking = threading.Thread(target=lambda: answers.setdefault("history", http_get(port, "/api/history")))
            asking.start()
            time.sleep(0.3)  # the history request is in flight
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)  # raises if it does not answer in 2 s
            conn.request("GET", "/healthz")
            health = conn.getresponse().status
            got = collect(port, lambda ms: any(m["type"] == "prediction" for m in ms), timeout=3)
            asking.join(timeout=15)
    finally:
        hung.close()
    assert health in (200, 503) and predictions(got)
    assert answers["history"][0] == 503 and "did not answer" in answers["history"][1]


def test_history_answers_come_in_pages_with_a_cursor(tmp_path, music_file):
    history = tmp_path / "h.sqlite3"
    store = open_store(str(history))
    rows = [cut(["rock"] * 2)[0].row() | {"stream": "old", "start_time": 1000.0 + i // 2, "end_time": 1001.0 + i // 2}
            for i in range(2500)]  # pairs with the same start time: the cursor must not skip or repeat one
    store.write(rows, [])
    store.close()
    with running_daemon(f"song={music_file}", "--history", str(history)) as (port, _):
        pages, cursor = [], None
        while True:
            status, body = http_get(port, "/api/history?stream=old" + (f"&cursor={cursor}" if cursor else ""))
            assert status == 200, body
            page = json.loads(body)
            pages.append(page["segments"])
            cursor = page["cursor"]
            if page["complete"]:
                break
        refused = [http_get(port, f"/api/history?{q}") for q in ("limit=20000", "stream=%00", "cursor=x", "limit=0")]
        small = json.loads(http_get(port, "/api/history?stream=old&limit=7")[1])
    assert [len(p) for p in pages] == [1000, 1000, 500] and cursor is None
    ids = [s["id"] for p in pages for s in p]
    assert len(ids) == len(set(ids)) == 2500 and sorted(ids) == sorted(r["id"] for r in rows)
    assert all(status == 400 for status, _ in refused) and "control characters" in refused[1][1]
    assert len(small["segments"]) == 7 and small["complete"] is False
