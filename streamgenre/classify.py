"""Classify whole files: what each 20-ms stretch is (music, speech, noise, silence: the content stage, segmented as
inaSpeechSegmenter does a file), and the genre of the music: every 3-s window, 50 % overlap, genre = argmax of the
mean probability (as the paper) over the windows that are music."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .audio import MIN_SECONDS, AudioError, load_audio, pad_to_window, sanitize
from .backends import Engine
from .content import MUSIC
from .frontend import Frontend
from .model import named_probabilities
from .pipeline import SILENCE_DB


def classify_file(path: str | Path, frontend: Frontend, engine: Engine, genres: tuple[str, ...], content,
                  timeline: bool = False, silence_db: float = SILENCE_DB) -> dict:
    """One file's result; raises AudioError for audio that is missing, undecodable or shorter than MIN_SECONDS.
    `content`: a content_stage.ContentStage, or LevelOnly (content off)."""
    skipped, params = [], frontend.params
    audio, replaced = sanitize(load_audio(path, skipped.append, params.sample_rate))
    duration = len(audio) / params.sample_rate
    if duration < MIN_SECONDS:
        raise AudioError(f"{path}: too short to classify ({duration:.2f} s; at least {MIN_SECONDS} s)")
    probs = engine.infer(frontend.file_windows(pad_to_window(audio, params.window_samples, params.short_fill)))
    kinds = content.file_content(audio, params.sample_rate, silence_db)
    spans = [kinds.span(i * params.step_seconds, i * params.step_seconds + params.window_seconds)
             for i in range(len(probs))]
    music = [p for p, (kind, _) in zip(probs, spans) if kind == MUSIC]
    mean = np.mean(music, axis=0) if music else None
    result = {
        "path": str(path),
        "content": kinds.seconds(),
        "genre": genres[int(np.argmax(mean))] if music else None,
        "probabilities": named_probabilities(genres, mean) if music else None,
        "windows": len(probs),
        "music_windows": len(music),
        "duration": round(duration, 3),
    }
    if replaced:
        result["replaced_samples"] = replaced  # NaN or infinite samples, classified as silence
    if skipped:
        result["skipped_packets"] = len(skipped)  # undecodable parts, left out
    if timeline:
        result["timeline"] = [
            {"start": round(i * params.step_seconds, 3), "end": round(i * params.step_seconds + params.window_seconds, 3),
             "content": kind,
             "content_probabilities": None if cp is None else named_probabilities(content.params.labels, cp),
             "probabilities": named_probabilities(genres, p)}
            for i, (p, (kind, cp)) in enumerate(zip(probs, spans))
        ]
    return result
