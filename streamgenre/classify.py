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


def classify_or_error(path: str | Path, frontend: Frontend, engine: Engine, genres: tuple[str, ...], content,
                      timeline: bool = False) -> tuple[dict | None, str | None]:
    """(result, None), or (None, one line) for a file that cannot be classified, whatever a hostile file causes."""
    try:
        return classify_file(path, frontend, engine, genres, content, timeline), None
    except AudioError as e:
        return None, str(e)
    except Exception as e:
        return None, f"{path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


_runtime = None  # a worker process's (frontend, engine, genres, content stage, timeline)


def _start_worker(model: str | None, engine_kind: str, frontend_kind: str, fp16: bool, content: str,
                  timeline: bool) -> None:
    """A worker's own model, frontend, engine and content stage, on one thread each: the cores are the workers'."""
    global _runtime
    from .backends import create_engine
    from .content_stage import create_content_stage
    from .frontend import create_frontend, limit_blas_threads
    from .model import load_model

    limit_blas_threads()
    loaded = load_model(model)
    stage = create_content_stage(content, engine_kind, loaded.params.step_seconds, threads=1, fp16=fp16)
    _runtime = (create_frontend(frontend_kind, loaded.params), create_engine(loaded, engine_kind, 1, fp16),
                loaded.genres, stage, timeline)


def _classify_in_worker(path: str) -> tuple[dict | None, str | None]:
    return classify_or_error(path, *_runtime)


def classify_in_parallel(paths: list, jobs: int, model: str | None, engine_kind: str, frontend_kind: str,
                         fp16: bool, content: str, timeline: bool):
    """(result, error) for each path, in order, from `jobs` worker processes (spawned: no inherited threads)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(model, engine_kind, frontend_kind, fp16, content, timeline)) as pool:
        yield from pool.map(_classify_in_worker, [str(p) for p in paths])
