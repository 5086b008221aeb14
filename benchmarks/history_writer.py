"""Rows per second the genre log's store takes: segment upserts (what the daemon writes, once a second, one row per
stream whose segment changed) and window inserts (with `history_windows = true`, one row per window).

    python benchmarks/history_writer.py [--history PATH|postgresql://...] [--streams 1000] [--flushes 50]

Each flush writes one transaction of one upserted segment row per stream (their open segments growing), then one of
one window row per stream, as the recorder does. Prints rows per second for both, with the store named.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from streamgenre.history import open_store
from streamgenre.history.segments import Segment
from streamgenre.history.store import window_row

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", help="the store to measure [a fresh SQLite file in a temporary folder]")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--flushes", type=int, default=50)
    args = parser.parse_args()
    location = args.history or str(Path(tempfile.mkdtemp()) / "history.sqlite3")
    store = open_store(location)
    now = time.time()
    segments = [Segment(f"s{i}", "genre", GENRES[i % 10], now, now) for i in range(args.streams)]
    probabilities = {g: 0.1 for g in GENRES}
    upserts = inserts = 0.0
    for flush in range(args.flushes):
        for s in segments:
            s.end, s.windows = now + flush, s.windows + 1
        started = time.perf_counter()
        store.write([s.row() for s in segments], [])
        upserts += time.perf_counter() - started
        started = time.perf_counter()
        store.write([], [window_row(s.stream, s.end, probabilities) for s in segments])
        inserts += time.perf_counter() - started
    rows = args.streams * args.flushes
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; store: {store.name} at {store.where}")
    print(f"segment upserts: {rows / upserts:10,.0f} rows/s ({args.streams} rows per transaction, {args.flushes} "
          f"transactions)")
    print(f"window inserts:  {rows / inserts:10,.0f} rows/s")
    print("the daemon writes about streams / 1.49 window rows and at most `streams` segment rows per second")
    store.close()


if __name__ == "__main__":
    main()
