"""Audio constants, decoding and resampling.

Everything downstream works on mono float32 at the model's sample rate (SAMPLE_RATE, the paper's, unless a model
says otherwise). Decoding and resampling go through PyAV (FFmpeg's
decoders and libswresample, which low-pass filters before it decimates), so files, network streams and sound cards
share one conversion path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np

# the paper model's audio hyperparameters (23 ms window, 50 % overlap) and its author's code (fmax); other models
# carry their own in their file (frontend.FrontendParams)
SAMPLE_RATE = 22050
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 64
F_MAX = 10000.0
WINDOW_FRAMES = 256  # frames in one model input (2.97 s)
STEP_FRAMES = WINDOW_FRAMES // 2  # a new window every 128 frames (50 % overlap)
WINDOW_SAMPLES = N_FFT + HOP_LENGTH * (WINDOW_FRAMES - 1)  # 65792 samples make exactly one window
# (frontend.PAPER derives the rest, and the same for any model's parameters)
MIN_SECONDS = 0.5  # shorter audio carries too little to classify

AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".aiff", ".aif")


class AudioError(Exception):
    """Audio that cannot be had or used; the message is one line meant for the user."""


class Resampler:
    """Streaming conversion of any rate and channel count to mono float32 at `to_rate`.

    Keeps its filter state between chunks, so chunked input gives the same samples as one long input.
    """

    def __init__(self, rate: int, channels: int = 1, to_rate: int = SAMPLE_RATE):
        self.rate = int(rate)
        self.channels = int(channels)
        self._layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=to_rate)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Convert float32 samples shaped (n,) or (n, channels); empty input flushes the filter."""
        if samples.size == 0:
            return self._collect(self._resampler.resample(None))
        planar = np.ascontiguousarray(samples.reshape(len(samples), -1).T, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=self._layout)
        frame.sample_rate = self.rate
        return self._collect(self._resampler.resample(frame))

    @staticmethod
    def _collect(frames) -> np.ndarray:
        if not frames:
            return np.zeros(0, np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


def open_container(source, timeout: float | None = None, name: str | None = None) -> av.container.InputContainer:
    """Open a path, URL or readable file object with FFmpeg, turning its errors into one-line AudioErrors."""
    url_or_path = name or source
    try:
        container = av.open(source, timeout=timeout, metadata_errors="ignore")
    except FileNotFoundError:
        raise AudioError(f"{url_or_path}: no such file") from None
    except (av.FFmpegError, OSError) as e:
        raise AudioError(f"{url_or_path}: cannot open: {_reason(e)}") from None
    if not container.streams.audio:
        container.close()
        raise AudioError(f"{url_or_path}: no audio stream in it")
    return container


def decode_chunks(container: av.container.InputContainer, name: str,
                  on_skip: Callable[[str], None] = lambda reason: None, rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Yield the container's first audio stream as mono float32 chunks at `rate`, as it is decoded.

    A packet that does not decode (garbled bytes, a truncated end) is skipped and `on_skip` hears why; the rest
    plays on. A change of sample rate or channel layout mid-stream (a radio switching formats, two files back to
    back) gets a new resampler, after the old one is flushed.
    """
    stream = container.streams.audio[0]
    resampler, layout = None, None
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                on_skip(_reason(e))
                continue
            for frame in frames:
                form = (frame.sample_rate, frame.layout.name, frame.format.name)
                if form != layout:
                    if resampler:
                        yield from _samples(resampler.resample(None))
                    resampler, layout = av.AudioResampler(format="flt", layout="mono", rate=rate), form
                frame.pts = None  # resample by sample count; streams with broken timestamps must not skew it
                yield from _samples(resampler.resample(frame))
        if resampler:
            yield from _samples(resampler.resample(None))
    except av.FFmpegError as e:
        raise AudioError(f"{name}: cannot decode: {_reason(e)}") from None


def _samples(frames) -> Iterator[np.ndarray]:
    for frame in frames:
        yield frame.to_ndarray().reshape(-1)


def check_file(path: str | Path) -> None:
    """A path that FFmpeg may open: a regular file (a FIFO would block forever, a directory is not audio)."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file (a directory, FIFO or device)")


def load_audio(path: str | Path, on_skip: Callable[[str], None] = lambda reason: None,
               rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a whole file to mono float32 at `rate` (undecodable packets skipped, see decode_chunks)."""
    check_file(path)
    container = open_container(str(path))
    with container:
        chunks = list(decode_chunks(container, str(path), on_skip, rate))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def sanitize(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """Audio the frontend can take whatever a file or device delivered: NaN and infinities become silence, and
    samples are clipped to [-1, 1], what any real converter holds. Returns it and the count of samples replaced."""
    audio = np.asarray(audio, np.float32)
    bad = ~np.isfinite(audio)
    replaced = int(bad.sum())
    if replaced:
        audio = np.where(bad, np.float32(0), audio)
    return np.clip(audio, -1.0, 1.0), replaced


def ac_level_db(audio: np.ndarray, axis: int | None = None):
    """RMS level in dBFS with the DC offset removed (a constant is as silent as zeros), of the whole array or along
    `axis` (one level per frame)."""
    level = 10 * np.log10(np.var(np.asarray(audio, np.float64), axis=axis) + 1e-12)
    return float(level) if axis is None else level


def pad_to_window(audio: np.ndarray, window_samples: int = WINDOW_SAMPLES, fill: str = "zeros") -> np.ndarray:
    """Audio shorter than one window made exactly one window: followed by silence (`zeros`) or repeated from its
    start (`repeat`, FrontendParams.short_fill); longer audio is returned as it is."""
    if len(audio) >= window_samples:
        return audio
    if fill == "repeat" and len(audio):
        return np.tile(audio, -(-window_samples // len(audio)))[:window_samples].astype(np.float32, copy=False)
    return np.concatenate([audio, np.zeros(window_samples - len(audio), np.float32)])


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error).splitlines()[0]
