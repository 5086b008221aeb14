"""Classify whole files: every 3-s window, 50 % overlap, genre = argmax of the mean probability (as the paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .audio import MIN_SECONDS, AudioError, load_audio, pad_to_window, sanitize
from .backends import Engine
from .frontend import Frontend
from .model import named_probabilities


def classify_file(path: str | Path, frontend: Frontend, engine: Engine, genres: tuple[str, ...],
                  timeline: bool = False) -> dict:
    """One file's result; raises AudioError for audio that is missing, undecodable or shorter than MIN_SECONDS."""
    skipped, params = [], frontend.params
    audio, replaced = sanitize(load_audio(path, skipped.append, params.sample_rate))
    duration = len(audio) / params.sample_rate
    if duration < MIN_SECONDS:
        raise AudioError(f"{path}: too short to classify ({duration:.2f} s; at least {MIN_SECONDS} s)")
    probs = engine.infer(frontend.file_windows(pad_to_window(audio, params.window_samples)))
    mean = probs.mean(axis=0)
    result = {
        "path": str(path),
        "genre": genres[int(np.argmax(mean))],
        "probabilities": named_probabilities(genres, mean),
        "windows": len(probs),
        "duration": round(duration, 3),
    }
    if replaced:
        result["replaced_samples"] = replaced  # NaN or infinite samples, classified as silence
    if skipped:
        result["skipped_packets"] = len(skipped)  # undecodable parts, left out
    if timeline:
        result["timeline"] = [
            {"start": round(i * params.step_seconds, 3), "end": round(i * params.step_seconds + params.window_seconds, 3),
             "probabilities": named_probabilities(genres, p)}
            for i, p in enumerate(probs)
        ]
    return result

