"""Where the genre log is kept: one SQL schema, versioned, and the statements every backend runs.

Backends (`sqlite.py`, `postgres.py`) only connect; the SQL here runs on both (written with `%(name)s` parameters,
which the SQLite backend rewrites to `:name`). The schema is documented in docs/history.md; a change to it is a new
entry in MIGRATIONS, applied in order inside one transaction when a database of an older version is opened.
"""

from __future__ import annotations

import datetime
import json
import re

from ..content import KINDS

SEGMENT_COLUMNS = ("id", "stream", "kind", "genre", "start_time", "end_time", "confidence", "windows", "title", "closed")



def segments_table(name: str, kinds: tuple[str, ...]) -> list[str]:
    """The segments table (and its indexes, where it is the real one) for segments of these kinds."""
    allowed = ", ".join(f"'{k}'" for k in kinds)
    table = f"""CREATE TABLE {name} (
            id TEXT PRIMARY KEY,
            stream TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ({allowed})),
            genre TEXT,
            start_time DOUBLE PRECISION NOT NULL,
            end_time DOUBLE PRECISION NOT NULL,
            confidence DOUBLE PRECISION,
            windows INTEGER NOT NULL,
            title TEXT,
            closed BOOLEAN NOT NULL)"""
    return [table] + ([] if name != "segments" else SEGMENT_INDEXES)


SEGMENT_INDEXES = ["CREATE INDEX segments_by_stream_and_time ON segments (stream, start_time)",
                   "CREATE INDEX segments_by_end ON segments (end_time)"]
MIGRATIONS = {
    1: [
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        *segments_table("segments", ("genre", "dead_air")),
        """CREATE TABLE windows (
            stream TEXT NOT NULL,
            end_time DOUBLE PRECISION NOT NULL,
            probabilities TEXT NOT NULL)""",
        "CREATE INDEX windows_by_stream_and_time ON windows (stream, end_time)",
    ],
    2: [  # the content stage: segments of music (with its genre), speech, noise and silence (dead air was its own)
        *segments_table("segments_v2", KINDS),
        f"INSERT INTO segments_v2 ({', '.join(SEGMENT_COLUMNS)}) SELECT id, stream, "
        "CASE kind WHEN 'genre' THEN 'music' ELSE 'silence' END, genre, start_time, end_time, confidence, windows, "
        "title, closed FROM segments",
        "DROP TABLE segments",
        "ALTER TABLE segments_v2 RENAME TO segments",
        *SEGMENT_INDEXES,
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)

UPSERT_SEGMENT = (
    f"INSERT INTO segments ({', '.join(SEGMENT_COLUMNS)}) VALUES ({', '.join(f'%({c})s' for c in SEGMENT_COLUMNS)}) "
    "ON CONFLICT (id) DO UPDATE SET end_time = excluded.end_time, confidence = excluded.confidence, "
    "windows = excluded.windows, closed = excluded.closed")
INSERT_WINDOW = "INSERT INTO windows (stream, end_time, probabilities) VALUES (%(stream)s, %(end_time)s, %(probabilities)s)"


class HistoryError(Exception):
    """A history database that cannot be opened, read or written; one line for the user."""


class Store:
    """A DB-API connection to the genre log. Subclasses connect and say their parameter style."""

    name = "store"
    placeholder_style = "pyformat"  # psycopg's %(name)s

    def __init__(self, connection, where: str):
        self.connection, self.where = connection, where

    def sql(self, statement: str) -> str:
        if self.placeholder_style == "named":
            return re.sub(r"%\((\w+)\)s", r":\1", statement)
        return statement

    def check_version(self) -> None:
        """For reading: a log of this version, or one line on why it cannot be read as it is."""
        version = self.version()
        if version != SCHEMA_VERSION:
            raise HistoryError(f"{self.where}: history schema version {version}, this streamgenre reads "
                               f"{SCHEMA_VERSION}: " + ("upgrade streamgenre" if version > SCHEMA_VERSION else
                                                        "the daemon migrates it when it next opens it"))

    def migrate(self) -> None:
        """Create the schema, or bring an older one up to SCHEMA_VERSION; refuse a newer one."""
        version = self.version()
        if version > SCHEMA_VERSION:
            raise HistoryError(f"{self.where}: history schema version {version} is newer than this streamgenre's "
                               f"({SCHEMA_VERSION}): upgrade streamgenre")
        if version == SCHEMA_VERSION:
            return  # no write transaction: every /api/history request and report opens the store
        with self.transaction() as cursor:
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v]:
                    cursor.execute(statement)
            cursor.execute("DELETE FROM schema_version")
            cursor.execute(self.sql("INSERT INTO schema_version (version) VALUES (%(v)s)"), {"v": SCHEMA_VERSION})

    def replaced(self) -> bool:
        """Whether the database this connection writes to is no longer the one at its location (a server's is)."""
        return False

    def version(self) -> int:
        """The stored schema version; 0 for an empty database."""
        raise NotImplementedError

    def transaction(self):
        """A context manager yielding a cursor, committing on success and rolling back on error."""
        raise NotImplementedError

    def write(self, segments: list[dict], windows: list[dict]) -> None:
        with self.transaction() as cursor:
            if segments:
                cursor.executemany(self.sql(UPSERT_SEGMENT), segments)
            if windows:
                cursor.executemany(self.sql(INSERT_WINDOW), windows)

    def close_leftovers(self, stream: str) -> int:
        """Close the segments of `stream` that a run killed before its clean stop left open (their end is the
        last window they hold); retention sees them from then on. Returns how many."""
        with self.transaction() as cursor:
            cursor.execute(self.sql("UPDATE segments SET closed = TRUE WHERE stream = %(stream)s AND NOT closed"),
                           {"stream": stream})
            return cursor.rowcount

    def delete_before(self, when: float) -> int:
        """Forget segments that ended and windows older than `when` (retention); returns the segments deleted."""
        with self.transaction() as cursor:
            cursor.execute(self.sql("DELETE FROM segments WHERE end_time < %(t)s AND closed"), {"t": when})
            deleted = cursor.rowcount
            cursor.execute(self.sql("DELETE FROM windows WHERE end_time < %(t)s"), {"t": when})
        return deleted

    def segments(self, stream: str | None = None, since: float | None = None, until: float | None = None,
                 limit: int | None = None, after: tuple[float, str] | None = None) -> list[dict]:
        """Segments overlapping [since, until], oldest first (then by id), as dicts of SEGMENT_COLUMNS; with
        `after` (a segment's start_time and id, a page's cursor), only those that come after it."""
        where, args = ["1 = 1"], {}
        if after is not None:
            where.append("(start_time > %(after_time)s OR (start_time = %(after_time)s AND id > %(after_id)s))")
            args["after_time"], args["after_id"] = after
        if stream is not None:
            where.append("stream = %(stream)s")
            args["stream"] = stream
        if since is not None:
            where.append("end_time > %(since)s")
            args["since"] = since
        if until is not None:
            where.append("start_time < %(until)s")
            args["until"] = until
        query = f"SELECT {', '.join(SEGMENT_COLUMNS)} FROM segments WHERE {' AND '.join(where)} ORDER BY start_time, id"
        if limit:
            query += f" LIMIT {int(limit)}"
        cursor = self.connection.cursor()  # a plain read: a transaction would take SQLite's write lock for it
        try:
            cursor.execute(self.sql(query), args)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        return [dict(zip(SEGMENT_COLUMNS, row)) | {"closed": bool(row[-1])} for row in rows]

    def stream_spans(self) -> dict[str, tuple[float, float]]:
        """Each stream in the log, with the start of its first segment and the end of its last."""
        cursor = self.connection.cursor()
        try:
            cursor.execute("SELECT stream, MIN(start_time), MAX(end_time) FROM segments GROUP BY stream ORDER BY stream")
            return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
        finally:
            cursor.close()

    def close(self) -> None:
        self.connection.close()


def window_row(stream: str, end: float, probabilities: dict) -> dict:
    return {"stream": stream, "end_time": end, "probabilities": json.dumps(probabilities)}


def open_store(location: str, read_only: bool = False) -> Store:
    """`postgresql://...` (PostgreSQL through psycopg), `sqlite:///PATH` or a plain path (SQLite), migrated; or,
    `read_only`, for reading an existing log as it is (report, /api/history), which needs no write permission."""
    if re.match(r"^postgres(ql)?://", location):
        from .postgres import PostgresStore

        store: Store = PostgresStore(location)
    else:
        from .sqlite import SqliteStore

        store = SqliteStore(location.removeprefix("sqlite://"), read_only)
    try:
        store.check_version() if read_only else store.migrate()
    except HistoryError:
        store.close()
        raise
    except Exception as e:
        store.close()
        raise HistoryError(f"{store.where}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    return store


def read_segments(location: str, stream: str | None = None, since: float | None = None, until: float | None = None,
                  limit: int | None = None, after: tuple[float, str] | None = None) -> list[dict]:
    """Segments from a store opened for this read only (the recorder keeps its own connection for writing)."""
    store = open_store(location, read_only=True)
    try:
        return store.segments(stream, since, until, limit, after)
    finally:
        store.close()


def read_stream_spans(location: str) -> dict[str, tuple[float, float]]:
    """What the log holds: each stream and the time its segments span (Store.stream_spans)."""
    store = open_store(location, read_only=True)
    try:
        return store.stream_spans()
    finally:
        store.close()


def segment_json(row: dict) -> dict:
    """A segment as /api/history and `report --format json` give it: Unix and ISO 8601 (UTC) times, its length."""
    return row | {"start": _iso(row["start_time"]), "end": _iso(row["end_time"]),
                  "seconds": round(row["end_time"] - row["start_time"], 3)}


def _iso(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).isoformat(timespec="milliseconds")
