"""The daemon's log: a line repeated within REPEAT_SECONDS is held back and counted, so that a flood of one error
(a client storm, a source failing in a loop) cannot fill the disk; the next time it passes it says how many were
held back."""

from __future__ import annotations

import logging
import threading
import time

REPEAT_SECONDS = 10.0
REMEMBERED = 10_000  # distinct lines remembered at most; older ones are forgotten first


class RepeatFilter(logging.Filter):
    def __init__(self, interval: float = REPEAT_SECONDS):
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple, tuple[float, int]] = {}  # (logger, level, text) -> (last passed, held back since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        key, now = (record.name, record.levelno, text), time.monotonic()
        with self._lock:
            passed, held = self._seen.pop(key, (None, 0))
            if passed is not None and now - passed < self.interval:
                self._seen[key] = (passed, held + 1)
                return False
            self._seen[key] = (now, 0)
            while len(self._seen) > REMEMBERED:
                del self._seen[next(iter(self._seen))]
        if held:
            record.msg, record.args = f"{text} (repeated {held} more times in {now - passed:.0f} s)", None
        return True


def configure(level: str) -> None:
    """Log to stderr (the journal under systemd) at `level`, repeats rate-limited."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter())
