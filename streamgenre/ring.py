"""A single-producer single-consumer ring buffer of mono float32 samples.

The producer (an audio callback or a decoder thread) only copies into preallocated storage and bumps a counter, so it
never blocks or allocates; a consumer that falls behind loses the oldest audio, and the loss is counted. Both sides
see only monotonically increasing sample counts, which the GIL makes safe to share without a lock.
"""

from __future__ import annotations

import time

import numpy as np

ARRIVALS = 64  # writes remembered for latency: when did sample n arrive?


class RingBuffer:
    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, np.float32)
        self.written = 0  # samples ever written (producer)
        self.read = 0  # samples ever read or skipped (consumer)
        self.overwritten = 0  # samples lost because the consumer was behind (consumer)
        self._arrival_end = np.zeros(ARRIVALS, np.int64)
        self._arrival_time = np.zeros(ARRIVALS, np.float64)
        self._writes = 0

    def write(self, samples: np.ndarray) -> None:
        """Producer: append samples shaped (n,) or (n, channels); channels are averaged into mono, in place."""
        n = len(samples)
        keep = min(n, self.capacity)  # more than fits: only the newest can survive
        start = (self.written + n - keep) % self.capacity
        first = min(keep, self.capacity - start)
        self._store(samples[n - keep : n - keep + first], start)
        self._store(samples[n - keep + first : n], 0)
        self.written += n
        slot = self._writes % ARRIVALS
        self._arrival_end[slot], self._arrival_time[slot] = self.written, time.monotonic()
        self._writes += 1

    def _store(self, samples: np.ndarray, at: int) -> None:
        out = self._data[at : at + len(samples)]
        if samples.ndim == 2:
            np.mean(samples, axis=1, out=out)
        else:
            out[:] = samples

    @property
    def available(self) -> int:
        """Samples the consumer can read now (at most the capacity)."""
        return min(self.written - self.read, self.capacity)

    @property
    def free(self) -> int:
        """Samples the producer can write without overwriting unread audio."""
        return self.capacity - (self.written - self.read)

    def read_all(self) -> np.ndarray:
        """Consumer: everything not read yet, oldest first; audio overwritten before it was read is counted."""
        end = self.written
        start = max(self.read, end - self.capacity)
        out = self._copy(start, end)
        clobbered = max(0, self.written - self.capacity - start)  # overwritten while it was being copied
        self.overwritten += start - self.read + clobbered
        self.read = end
        return out[clobbered:]

    def _copy(self, start: int, end: int) -> np.ndarray:
        a, b = start % self.capacity, end - start
        if a + b <= self.capacity:
            return self._data[a : a + b].copy()
        return np.concatenate([self._data[a:], self._data[: a + b - self.capacity]])

    def arrival_time(self, sample: int) -> float:
        """Monotonic time at which the write holding sample number `sample` (1-based count) completed."""
        ends, times = self._arrival_end, self._arrival_time
        candidates = np.flatnonzero(ends >= sample)
        if not len(candidates):
            return float(times.max())
        return float(times[candidates[np.argmin(ends[candidates])]])
