"""Cutting a stream's predictions into segments of one content kind (music of one genre, speech, noise or
silence), as they arrive.

Each window stands for the newest step of audio it adds, (end - step, end], so consecutive windows tile the time a
stream was served and segments add up to it. A change of the running average's top genre, or of the content kind,
becomes a cut only once it has held for `hold` seconds: windows of a change that does not hold stay in the segment
they interrupted. The cut is then placed where the change began. A new ICY title and a gap in the audio (an outage:
at least half a step missing between two windows) cut at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ..content import MUSIC


@dataclass
class Segment:
    stream: str
    kind: str  # content.KINDS: music, speech, noise or silence
    genre: str | None  # of music; None for the other kinds
    start: float  # Unix time, seconds
    end: float
    title: str | None = None
    windows: int = 0
    confidence_sum: float = 0.0  # over the windows whose top genre is this segment's
    confident_windows: int = 0
    closed: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def label(self) -> str:
        return self.genre if self.kind == MUSIC else self.kind

    @property
    def confidence(self) -> float | None:
        """Mean confidence of the running average's top genre over the segment's windows of that genre."""
        return round(self.confidence_sum / self.confident_windows, 5) if self.confident_windows else None

    def add(self, window: "Window") -> None:
        self.end = max(self.end, window.end)
        self.windows += 1
        if window.label == self.label and window.confidence is not None:
            self.confidence_sum += window.confidence
            self.confident_windows += 1

    def row(self) -> dict:
        return {"id": self.id, "stream": self.stream, "kind": self.kind, "genre": self.genre, "start_time": self.start,
                "end_time": self.end, "confidence": self.confidence, "windows": self.windows, "title": self.title,
                "closed": self.closed}


@dataclass(frozen=True)
class Window:
    end: float  # Unix time of the window's last sample
    step: float  # seconds of new audio it adds
    kind: str  # content.KINDS
    genre: str | None  # the running average's top genre, for music
    confidence: float | None
    title: str | None

    @property
    def label(self) -> str:
        return self.genre if self.kind == MUSIC else self.kind

    @property
    def start(self) -> float:
        return self.end - self.step


class Segmenter:
    """One stream's segments: `add` each window in order; `changed` collects the segments to write."""

    def __init__(self, stream: str, hold: float):
        self.stream, self.hold = stream, hold
        self.current: Segment | None = None
        self.pending: list[Window] = []  # windows of a change that has not held yet
        self.last_end: float | None = None  # of the last window added
        self.changed: dict[str, Segment] = {}

    def add(self, window: Window) -> None:
        current, last_end, self.last_end = self.current, self.last_end, window.end
        if current is None:
            self._open(window)
        elif window.start - last_end > window.step / 2 or (window.title and window.title != current.title):
            self.close()  # an outage, or a new title: cut here
            self._open(window)
        elif window.label == current.label:
            self._absorb_pending()
            current.add(window)
        else:
            if self.pending and self.pending[0].label != window.label:
                self._absorb_pending()
            self.pending.append(window)
            if window.end - self.pending[0].start >= self.hold:
                started, self.pending = self.pending, []
                self.close()
                self._open(started[0])
                for w in started[1:]:
                    self.current.add(w)
        self.changed[self.current.id] = self.current

    def close(self) -> None:
        """End the open segment (the daemon stops, the stream is removed, the audio stopped)."""
        if self.current is None:
            return
        self._absorb_pending()
        self.current.closed = True
        self.changed[self.current.id] = self.current
        self.current = None

    def take_changed(self) -> list[Segment]:
        changed, self.changed = list(self.changed.values()), {}
        return changed

    def _absorb_pending(self) -> None:
        for w in self.pending:
            self.current.add(w)
        self.pending = []

    def _open(self, window: Window) -> None:
        self.current = Segment(self.stream, window.kind, window.genre if window.kind == MUSIC else None,
                               window.start, window.start, window.title)
        self.current.add(window)
