"""Classifying files: tracks per second and times real time, with the model loaded once.

    python benchmarks/classify_speed.py [--model paper|musicnn] [--tracks 20] [--threads 1] [--content on|off]

Uses 30-s GTZAN tracks from ../shared when present, else 30 s of synthetic audio written to a temporary WAV file;
times decoding, the frontend and ONNX Runtime together, as `streamgenre classify` runs them.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from streamgenre.backends import create_engine
from streamgenre.classify import classify_file
from streamgenre.content_stage import create_content_stage
from streamgenre.frontend import create_frontend, limit_blas_threads
from streamgenre.model import load_model

SHARED_TRACKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan" / "full"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="paper", help="paper, musicnn or an ONNX file")
    parser.add_argument("--tracks", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (the issue's figure: one core)")
    parser.add_argument("--engine", default="onnx", help="auto, tensorrt or onnx")
    parser.add_argument("--frontend", default="cpu", help="auto, gpu or cpu")
    parser.add_argument("--content", default="on", help="on or off: the content stage")
    args = parser.parse_args()
    limit_blas_threads()  # as the CLI does
    files = sorted(SHARED_TRACKS.glob("*.flac"))[: args.tracks]
    if not files:
        path = Path(tempfile.mkdtemp()) / "noise.wav"
        soundfile.write(path, np.random.default_rng(0).uniform(-0.3, 0.3, 30 * 22050).astype(np.float32), 22050)
        files = [path] * args.tracks
    model = load_model(args.model)
    frontend = create_frontend(args.frontend, model.params)
    engine = create_engine(model, args.engine, threads=args.threads)
    content = create_content_stage(args.content, args.engine, model.params.step_seconds, threads=args.threads)
    classify_file(files[0], frontend, engine, model.genres, content)  # warm-up
    started, audio = time.perf_counter(), 0.0
    for f in files:
        audio += classify_file(f, frontend, engine, model.genres, content)["duration"]
    elapsed = time.perf_counter() - started
    print(f"model {model.name}; machine: {platform.machine()}, {os.cpu_count()} cores; {engine.description}, "
          f"{args.threads} thread(s); "
          f"frontend: {frontend.description}; {content.description}")
    print(f"{len(files)} tracks, {audio:.0f} s of audio in {elapsed:.2f} s: {len(files) / elapsed:.1f} tracks/s, "
          f"{audio / elapsed:.0f}x real time, {1000 * elapsed / len(files):.0f} ms per track")


if __name__ == "__main__":
    main()
