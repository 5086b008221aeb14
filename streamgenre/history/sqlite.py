"""The genre log in an SQLite file (the default): WAL mode, so readers (the report, /api/history) never block the
writer, and a `kill -9` or a power cut loses at most the transactions not yet committed, never the file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from pathlib import Path

from .store import HistoryError, Store


class SqliteStore(Store):
    name = "sqlite"
    placeholder_style = "named"

    def __init__(self, path: str | Path, read_only: bool = False):
        path = Path(path).expanduser()
        try:
            if read_only:
                connection = self._connect_read_only(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable to the last checkpoint
        except (OSError, sqlite3.Error) as e:
            raise HistoryError(f"{path}: cannot open the history database: {e}") from None
        super().__init__(connection, str(path))
        self.path = path
        self.identity = self._identity()  # (device, inode) of the file this connection writes

    @staticmethod
    def _connect_read_only(path: Path) -> sqlite3.Connection:
        """`mode=ro`, which still needs the WAL's shared-memory file; where that cannot be made (a read-only
        filesystem: a backup, a snapshot), `immutable=1`, which reads the file as it is: nothing writes there."""
        if not path.is_file():
            raise sqlite3.OperationalError("no such file")
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}"
        try:
            connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, timeout=5.0)
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return connection
        except sqlite3.OperationalError:
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)

    def _identity(self) -> tuple[int, int] | None:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def replaced(self) -> bool:
        """The file was deleted or replaced under the open connection (which would go on writing to the old one)."""
        return self._identity() != self.identity

    def version(self) -> int:
        found = self.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
        if not found:
            return 0
        row = self.connection.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    @contextlib.contextmanager
    def transaction(self):
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        else:
            cursor.execute("COMMIT")
        finally:
            cursor.close()
