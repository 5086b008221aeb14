"""The pool of unlabelled audio (train/pool.py): what the builder keeps, the licences it records, and the teacher's
labels cached by content so that a second session resumes."""

import shutil

import numpy as np
import pytest

from conftest import synth_music, write_audio
from train.pool import add_folder, label, licences, pool_tracks, read_manifest, write_manifest


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
    assert label(pool, teacher, lambda *_: None, labels) == (1, 0)
    (cached,) = labels.glob("*.npy")
    before = cached.stat().st_mtime_ns
    write_audio(pool / "b.wav", synth_music(4.0, seed=4))  # the pool grew, as in a second session
    write_manifest(pool, add_folder(manifest, pool, "b", "free", pool, lambda *_: None))
    assert label(pool, teacher, lambda *_: None, labels) == (1, 1)
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
