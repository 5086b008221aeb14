"""The pool of unlabelled audio (train/pool.py): what the builder keeps, the licences it records, and the teacher's
labels cached by content so that a second session resumes."""

import shutil

import numpy as np
import pytest

from conftest import synth_music, write_audio
from train.pool import add_folder, label, licences, open_archives, pool_tracks, read_manifest, write_manifest


def test_the_pool_keeps_only_decodable_audio_of_at_least_one_window_once(tmp_path):
    folder = tmp_path / "unpacked" / "game-music"
    (folder / "music").mkdir(parents=True)
    write_audio(folder / "music" / "theme.wav", synth_music(5.0, seed=1))
    shutil.copy(folder / "music" / "theme.wav", folder / "theme-again.wav")  # the same recording twice
    write_audio(folder / "short.wav", synth_music(1.0, seed=2))
    write_audio(folder / "silent.wav", np.zeros(22050 * 5, np.float32))
    (folder / "broken.ogg").write_bytes(b"OggS" + bytes(range(256)) * 8)
    (folder / "readme.txt").write_text("not audio")
    said = []
    manifest = add_folder({}, folder, "game-music", "CC-BY-SA-3.0", tmp_path, said.append)
    assert [(e["path"], e["package"], e["licence"]) for e in manifest.values()] == [
        ("unpacked/game-music/music/theme.wav", "game-music", "CC-BY-SA-3.0")]
    assert list(manifest.values())[0]["seconds"] == 5.0
    refused = [line for line in said if line.startswith("  refused")]
    assert said[-1] == "game-music: 1 kept, 3 refused, 1 copies of files kept already; licence: CC-BY-SA-3.0"
    assert len(refused) == 3 and any("short.wav" in r and "shorter than one window" in r for r in refused)
    assert any("broken.ogg" in r for r in refused) and any("silent.wav" in r for r in refused)
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest


def test_music_kept_in_a_zip_archive_is_taken_out_and_no_member_lands_outside(tmp_path):
    import zipfile

    folder = tmp_path / "unpacked" / "game-data"
    (folder / "base").mkdir(parents=True)
    theme = write_audio(tmp_path / "theme.wav", synth_music(4.0, seed=5))
    with zipfile.ZipFile(folder / "base" / "data.pk3", "w") as z:
        z.write(theme, "music/theme.wav")
        z.write(theme, "../../escaped.wav")  # a hostile member name
        z.writestr("maps/level.txt", "not audio")
    (folder / "base" / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    (folder / "sounds").mkdir()
    write_audio(folder / "sounds" / "explosion.wav", synth_music(4.0, seed=6))  # a game's sound effect
    said = []
    open_archives(folder, said.append)
    taken = folder / "base" / "data.pk3.d"
    assert sorted(str(p.relative_to(taken)) for p in taken.rglob("*") if p.is_file()) == ["escaped.wav",
                                                                                          "music/theme.wav"]
    assert [p.parent for p in tmp_path.rglob("escaped.wav")] == [taken]
    assert len(said) == 1 and "broken.zip: not opened" in said[0]
    manifest = add_folder({}, folder, "game-data", "GPL-2", tmp_path, said.append, music_only=True)
    assert [e["path"] for e in manifest.values()] == ["unpacked/game-data/base/data.pk3.d/music/theme.wav"]
    assert said.pop() == ("game-data: 1 kept, 0 refused, 0 copies of files kept already, 2 outside music folders; "
                          "licence: GPL-2")
    open_archives(folder, said.append)  # a second run reuses what it took out, and says again what it could not open
    assert len(said) == 2 and said[1] == said[0]


def test_licences_come_from_the_packages_copyright_file(tmp_path):
    dep5 = tmp_path / "copyright"
    dep5.write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\n"
                    "License: GPL-2+\n\nFiles: data/music/*\nLicense: CC-BY-SA-3.0\n\nFiles: lib/x.c\nLicense: MIT\n"
                    "\nLicense: GPL-2+\n text\n")
    assert licences(dep5) == "CC-BY-SA-3.0"  # the music's, not every source file's
    dep5.write_text("Files: *\nLicense: GPL-2+\n\nFiles: lib/x.c\nLicense: MIT\n")
    assert licences(dep5) == "GPL-2+"
    dep5.write_text("This package was debianized by someone.\n\nLicense\n\n   THE WORK IS PROVIDED UNDER THE TERMS OF "
                    "THIS CREATIVE COMMONS PUBLIC LICENSE\n")
    assert licences(dep5) == "Creative Commons (free text)"
    assert licences(tmp_path / "none") == "unknown (no copyright file)"


def test_the_teachers_labels_are_cached_by_content_and_a_second_run_resumes(tmp_path):
    from train.teacher import OnnxTeacher, embed_windows
    from streamgenre.audio import load_audio

    pool, labels = tmp_path / "pool", tmp_path / "labels"
    pool.mkdir()
    first = write_audio(pool / "a.wav", synth_music(6.0, seed=3))
    manifest = add_folder({}, pool, "a", "free", pool, lambda *_: None)
    write_manifest(pool, manifest)
    teacher = OnnxTeacher()
    assert label(pool, teacher, lambda *_: None, labels) == (1, 0, 0)
    (cached,) = labels.glob("*.npy")
    before = cached.stat().st_mtime_ns
    write_audio(pool / "b.wav", synth_music(4.0, seed=4))  # the pool grew, as in a second session
    write_manifest(pool, add_folder(manifest, pool, "b", "free", pool, lambda *_: None))
    gone = write_audio(pool / "c.wav", synth_music(4.0, seed=5))
    write_manifest(pool, add_folder(manifest, pool, "c", "free", pool, lambda *_: None))
    gone.unlink()  # the manifest names a file no longer there: one line, the others still labelled
    said = []
    assert label(pool, teacher, said.append, labels) == (1, 1, 1)
    assert len(said) == 1 and said[0].startswith("  not labelled:") and "c.wav" in said[0]
    assert cached.stat().st_mtime_ns == before and len(list(labels.glob("*.npy"))) == 2
    tracks, embeddings = pool_tracks(pool, labels)
    assert {t.path.name for t in tracks} == {"a.wav", "b.wav"} and not any(t.own_label for t in tracks)
    a = embeddings[str(first.resolve())]
    np.testing.assert_allclose(a, embed_windows(load_audio(first), teacher), atol=1e-5)
    assert a.shape == (3, 456)  # 6 s: three 2.97-s windows, one every 1.49 s


def test_the_onnx_teacher_embeds_as_the_pytorch_port():
    pytest.importorskip("musicnn", reason="musicnn's weights are not installed (pip install --no-deps musicnn==0.1.0)")
    from train.teacher import OnnxTeacher, Teacher, teacher_spectrograms

    specs = teacher_spectrograms(np.stack([synth_music(2.98, seed=s)[:65536] for s in range(3)]))
    np.testing.assert_allclose(OnnxTeacher().embed(specs), Teacher().embed(specs), atol=2e-4)


def test_pool_files_are_cut_into_pieces_of_a_tracks_length_each_drawn_as_its_own_genre():
    from pathlib import Path

    from streamgenre.audio import N_MELS, STEP_FRAMES, WINDOW_FRAMES
    from train.data import Track, window_starts
    from train.pool import PIECE_WINDOWS, pool_pieces

    genres = ["blues", "classical", "rock"]
    n = 2 * PIECE_WINDOWS + 7  # two pieces, the remainder shared between them
    soft = np.full((n, 3), 0.1)
    soft[:23, 1] = soft[23:, 2] = 0.8  # classical, then rock
    mel = np.arange(N_MELS * ((n - 1) * STEP_FRAMES + WINDOW_FRAMES), dtype=np.float32).reshape(N_MELS, -1)
    long = Track(Path("long.ogg"), "", "pool:long", "pool", mel=mel, soft=soft, own_label=False)
    short = Track(Path("short.ogg"), "", "pool:short", "pool", mel=mel[:, : 4 * STEP_FRAMES + WINDOW_FRAMES],
                  soft=soft[:5], own_label=False)
    gtzan = Track(Path("blues.00001.wav"), "blues", "gtzan:blues.00001", "gtzan", mel=mel)
    pieces = pool_pieces([gtzan, long, short], genres)
    assert pieces[0] is gtzan and [len(p.soft) for p in pieces[1:]] == [23, 22, 5]
    assert [p.genre for p in pieces[1:]] == ["classical", "rock", "classical"]
    assert all(p.recording == "pool:long" and not p.own_label for p in pieces[1:3])
    for piece, first in zip(pieces[1:3], (0, 23)):  # every soft target sits on the window it labels
        assert len(window_starts(piece.mel.shape[1])) == len(piece.soft)
        np.testing.assert_array_equal(piece.soft, soft[first : first + len(piece.soft)])
        np.testing.assert_array_equal(piece.mel, mel[:, first * STEP_FRAMES : (first + len(piece.soft) - 1) * STEP_FRAMES
                                                     + WINDOW_FRAMES])
    assert pieces[3].mel is short.mel
