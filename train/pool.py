"""The larger pool of unlabelled audio the student learns the teacher's function from: freely licensed recordings
from Debian's archive and MIDI rendered to audio, each 3-s window labelled by the teacher, cached by content so a
second session resumes where the first stopped. One command per stage, all seeded where they draw:

    python -m train.pool fetch --out train/pool                # apt-get download, unpack, keep what decodes (+ licences)
    python -m train.pool render --out train/pool               # MIDI (freedoom, openttd-openmsx, ...) through fluidsynth
    python -m train.pool label --pool train/pool               # the teacher's embeddings at every window, cached
    python -m train.train --data ../shared/data/gtzan --data ../shared/data/extra --recipe distil \
        --teacher train/runs/teacher.npz --split ../shared/data/gtzan/splits --pool train/pool \
        --checkpoint train/runs/checkpoints                    # checkpointed every epoch; run again to resume

`train/pool/pool.json` lists every file kept: its path, package, licence (from the package's copyright file),
length and SHA-256. The pool is never committed (`train/pool/` is ignored); only what it took is reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from streamgenre.audio import (AUDIO_EXTENSIONS, SAMPLE_RATE, STEP_FRAMES, WINDOW_FRAMES, WINDOW_SAMPLES,
                               AudioError, load_audio)
from train.data import CACHE, Track

# Debian packages of freely licensed game music (read each copyright file: the manifest keeps its licences)
PACKAGES = ("warzone2100-music", "ufoai-music", "wesnoth-1.16-music", "naev-data", "supertux-data",
            "hedgewars-data", "widelands-data", "nexuiz-music", "singularity-music", "supertuxkart-data", "0ad-data")
ARCHIVES = (".pk3", ".zip")  # games that keep their music in zip archives (ufoai's base/0music.pk3)
MAX_MEMBER_BYTES = 1 << 30  # a member claiming more is not music
MUSIC_FOLDER = re.compile("music", re.I)  # music/, Music/, snd/music/, 0music.pk3.d/
MIDI_PACKAGES = ("freedoom", "openttd-openmsx", "planetblupi-music-midi")
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
PIECE_WINDOWS = 19  # a piece of a pool file: GTZAN's 30 s, in windows (one every 1.49 s)
LABELS = CACHE / "pool-labels"  # the teacher's embeddings by content hash
TEACHER_KEY = "msd456"  # what the cached embeddings are: MSD_musicnn + MSD_vgg, 456 values a window


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


LICENCE_NAMES = ("Creative Commons", "CC-BY-SA", "CC-BY", "CC0", "GNU General Public License", "GPL", "Artistic",
                 "MIT", "BSD", "public domain")  # what a copyright file in free text may name


def licences(copyright_file: Path) -> str:
    """The licence a Debian copyright file gives the music: in DEP-5, the `License:` of the stanzas whose `Files:`
    name music or audio, else of `Files: *`; in free text, the first licence it names. The manifest keeps the file's
    path too: it, not this summary, is the word."""
    try:
        text = copyright_file.read_text(errors="replace")
    except OSError:
        return "unknown (no copyright file)"
    stanzas = [dict(re.findall(r"^(Files|License):\s*(.+)$", block, re.M)) for block in re.split(r"\n\s*\n", text)]
    stanzas = [st for st in stanzas if "Files" in st and "License" in st]
    if stanzas:
        music = [st for st in stanzas if re.search(r"music|sound|audio|\.(ogg|opus|mp3|flac|wav)", st["Files"], re.I)]
        chosen = music or [st for st in stanzas if st["Files"].strip() == "*"] or stanzas
        return ", ".join(sorted({st["License"].strip() for st in chosen}))
    for name in LICENCE_NAMES:
        if re.search(re.escape(name), text, re.I):
            return f"{name} (free text)"
    return "unknown (read the copyright file)"


def keep(path: Path) -> tuple[float | None, str | None]:
    """(seconds, None) for audio that decodes to at least one window, else (None, why not)."""
    try:
        audio = load_audio(path)
    except AudioError as e:
        return None, str(e).splitlines()[0]
    if len(audio) < WINDOW_SAMPLES:
        return None, f"{len(audio) / SAMPLE_RATE:.2f} s: shorter than one window"
    if not np.isfinite(audio).all() or not np.abs(audio).max() > 0:
        return None, "silent or not finite"
    return len(audio) / SAMPLE_RATE, None


def add_folder(manifest: dict, folder: Path, package: str, licence: str, root: Path, log=print,
               music_only: bool = False) -> dict:
    """Every audio file under `folder` that `keep` accepts, into the manifest (by content hash: a file met twice, in
    two packages or two runs, is kept once, and decoded once). With `music_only` (a game's data package, which holds
    its sound effects and speech too), only files with a folder naming music on their path."""
    kept = refused = copies = outside = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS):
        if music_only and not MUSIC_FOLDER.search(str(path.parent.relative_to(folder))):
            outside += 1
            continue
        digest = file_hash(path)
        if digest in manifest:
            copies += 1
            continue
        seconds, why = keep(path)
        if seconds is None:
            refused += 1
            log(f"  refused {path.relative_to(folder)}: {why}")
            continue
        manifest[digest] = {"path": str(path.relative_to(root)), "package": package, "licence": licence,
                            "copyright": f"unpacked/{package}/usr/share/doc/{package}/copyright",
                            "seconds": round(seconds, 2), "sha256": digest}
        kept += 1
    log(f"{package}: {kept} kept, {refused} refused, {copies} copies of files kept already"
        + (f", {outside} outside music folders" if music_only else "") + f"; licence: {licence}")
    return manifest


def read_manifest(out: Path) -> dict:
    path = out / "pool.json"
    return {e["sha256"]: e for e in json.loads(path.read_text())} if path.exists() else {}


def write_manifest(out: Path, manifest: dict) -> None:
    partial = out / "pool.json.partial"
    partial.write_text(json.dumps(sorted(manifest.values(), key=lambda e: e["path"]), indent=1))
    partial.replace(out / "pool.json")


def unpack(package: str, out: Path, log=print) -> Path | None:
    """`apt-get download` the package and unpack it under out/unpacked/PACKAGE (kept: a second run reuses it)."""
    target = out / "unpacked" / package
    if target.is_dir():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("*.deb"))
        if got.returncode != 0 or not debs:
            log(f"{package}: not downloaded: {(got.stderr.strip().splitlines() or ['no .deb'])[-1]}")
            return None
        partial = target.with_name(package + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        unpacked = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(partial)], capture_output=True, text=True)
        if unpacked.returncode != 0:
            log(f"{package}: not unpacked: {(unpacked.stderr.strip().splitlines() or ['dpkg-deb failed'])[0]}")
            return None
        partial.rename(target)
    return target


def member_path(name: str) -> Path | None:
    """Where a zip member goes inside the folder it is taken out to: its path less any root, `.` or `..` (so nothing
    lands outside), or None when it is not audio."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", ".", "..")]
    return Path(*parts) if parts and Path(parts[-1]).suffix.lower() in AUDIO_EXTENSIONS else None


def open_archives(folder: Path, log=print) -> None:
    """The audio inside every zip archive under `folder`, taken out beside it into ARCHIVE.d/ with its folders (so
    MUSIC_FOLDER can tell music from sound effects), once: a second run reuses it."""
    for archive in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in ARCHIVES):
        target = archive.with_name(archive.name + ".d")
        if target.is_dir():
            continue
        partial = archive.with_name(archive.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            with zipfile.ZipFile(archive) as z:
                for member in z.infolist():
                    if (inside := member_path(member.filename)) is None or member.file_size > MAX_MEMBER_BYTES:
                        continue
                    (partial / inside).parent.mkdir(parents=True, exist_ok=True)
                    with z.open(member) as src, (partial / inside).open("wb") as dst:
                        shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, OSError) as e:
            log(f"  {archive.relative_to(folder)}: not opened: {e}")
            continue
        partial.rename(target)


def fetch(packages, out: Path, log=print) -> dict:
    manifest = read_manifest(out)
    for package in packages:
        if (folder := unpack(package, out, log)) is not None:
            open_archives(folder, log)
            add_folder(manifest, folder, package, licences(folder / "usr/share/doc" / package / "copyright"), out, log,
                       music_only=not package.endswith("-music"))
            write_manifest(out, manifest)
    return manifest


def render(packages, out: Path, soundfonts=SOUNDFONTS, log=print) -> dict:
    """Every MIDI file of the packages through fluidsynth with each soundfont present (different instruments for the
    same notes), as WAV under out/rendered, then kept like any audio."""
    fluidsynth = shutil.which("fluidsynth")
    fonts = [f for f in soundfonts if Path(f).exists()]
    if not fluidsynth or not fonts:
        raise SystemExit("render needs fluidsynth and a soundfont: apt-get install fluidsynth fluid-soundfont-gm")
    manifest = read_manifest(out)
    for package in packages:
        if (folder := unpack(package, out, log)) is None:
            continue
        rendered = out / "rendered" / package
        for midi in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi")):
            for font in fonts:
                wav = rendered / f"{midi.stem}-{Path(font).stem}.wav"
                if not wav.exists():
                    wav.parent.mkdir(parents=True, exist_ok=True)
                    subprocess.run([fluidsynth, "-ni", "-q", "-F", str(wav), "-r", str(SAMPLE_RATE), font, str(midi)],
                                   capture_output=True, timeout=600)
        if rendered.is_dir():
            add_folder(manifest, rendered, package, licences(folder / "usr/share/doc" / package / "copyright") +
                       "; rendered with " + ", ".join(Path(f).name for f in fonts), out, log)
            write_manifest(out, manifest)
    return manifest


def label(pool: Path, teacher, log=print, labels: Path = LABELS) -> tuple[int, int, int]:
    """The teacher's embeddings at every student window of every pool file, in LABELS by the file's content hash:
    a second run (another session) computes only what is not there. A file that no longer decodes is one line and
    left unlabelled (so out of training); the others go on. Returns (computed, already cached, failed)."""
    from train.data import cached
    from train.teacher import embed_windows

    computed = failed = 0
    manifest = read_manifest(pool)
    # in order of content hash, which mixes the packages: a run stopped part-way has labelled some of each
    for k, entry in enumerate(sorted(manifest.values(), key=lambda e: e["sha256"])):
        target = labels / f"{entry['sha256']}-{TEACHER_KEY}.npy"
        if target.exists():
            continue
        try:
            cached(target, lambda: embed_windows(load_audio(pool / entry["path"]), teacher))
        except AudioError as e:
            failed += 1
            log(f"  not labelled: {str(e).splitlines()[0]}")
            continue
        computed += 1
        if computed % 20 == 0:
            log(f"{k + 1}/{len(manifest)} files labelled")
    return computed, len(manifest) - computed - failed, failed


def pool_tracks(pool: Path, labels: Path = LABELS) -> tuple[list[Track], dict[str, np.ndarray]]:
    """The labelled pool as training tracks (no label of their own: the teacher's head labels them) and their
    embeddings by resolved path, as train.train's teacher gives them; files not labelled yet are left out."""
    tracks, embeddings = [], {}
    for entry in read_manifest(pool).values():
        target = labels / f"{entry['sha256']}-{TEACHER_KEY}.npy"
        if target.exists():
            path = pool / entry["path"]
            tracks.append(Track(path, "", f"pool:{entry['sha256'][:16]}", "pool", own_label=False))
            embeddings[str(path.resolve())] = np.load(target)
    return tracks, embeddings


def pool_pieces(tracks: list[Track], genres: list[str], windows: int = PIECE_WINDOWS) -> list[Track]:
    """The pool's files (their soft targets attached) cut into pieces of about GTZAN's 30 s, each drawn as the genre
    the teacher hears most in it: an epoch draws once per track, so the pool weighs by its length, as the labelled
    recordings do, not once per file however long. Other tracks pass unchanged."""
    out = []
    for track in tracks:
        if track.source != "pool":
            out.append(track)
            continue
        for part in np.array_split(np.arange(len(track.soft)), max(1, len(track.soft) // windows)):
            first, last = part[0] * STEP_FRAMES, part[-1] * STEP_FRAMES + WINDOW_FRAMES
            soft = track.soft[part[0] : part[-1] + 1]
            embedding = None if track.embedding is None else track.embedding[part[0] : part[-1] + 1]
            mel = track.mel if len(part) == len(track.soft) else track.mel[:, first:last]
            out.append(dataclasses.replace(track, mel=mel, soft=soft, embedding=embedding,
                                           genre=genres[int(np.argmax(soft.mean(0)))]))
    return out


def describe(manifest: dict) -> str:
    by_package: dict[str, list] = {}
    for e in manifest.values():
        by_package.setdefault(e["package"], []).append(e)
    lines = [f"{len(manifest)} files, {sum(e['seconds'] for e in manifest.values()) / 3600:.1f} h"]
    for package, entries in sorted(by_package.items()):
        lines.append(f"  {package}: {len(entries)} files, {sum(e['seconds'] for e in entries) / 3600:.2f} h; "
                     f"{entries[0]['licence']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("fetch", "render"):
        command = commands.add_parser(name)
        command.add_argument("--out", type=Path, default=Path("train/pool"))
        command.add_argument("--package", action="append", help="instead of the default list")
    command = commands.add_parser("label")
    command.add_argument("--pool", type=Path, default=Path("train/pool"))
    command.add_argument("--torch", action="store_true", help="the PyTorch port instead of ONNX Runtime")
    command.add_argument("--threads", type=int, default=0, help="ONNX Runtime's threads (0: one per core)")
    args = parser.parse_args()
    if args.command == "label":
        from train.teacher import make_teacher

        computed, cached, failed = label(args.pool, make_teacher(args.torch, args.threads))
        print(f"{computed} files labelled now, {cached} already labelled, {failed} failed")
        raise SystemExit(1 if failed else 0)
    args.out.mkdir(parents=True, exist_ok=True)
    work = fetch if args.command == "fetch" else render
    manifest = work(args.package or (PACKAGES if args.command == "fetch" else MIDI_PACKAGES), args.out)
    print(describe(manifest))


if __name__ == "__main__":
    main()
