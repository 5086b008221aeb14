"""The genre log in PostgreSQL, through psycopg (`pip install "streamgenre[postgres]"`), for several daemons (or a
cluster's coordinator) writing to one place: `--history postgresql://user@host/db`."""

from __future__ import annotations

import contextlib

from ..access import redact
from .store import HistoryError, Store


class PostgresStore(Store):
    name = "postgresql"

    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError:
            raise HistoryError("PostgreSQL history needs psycopg: pip install 'streamgenre[postgres]'") from None
        shown = redact(url)
        try:
            connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise HistoryError(f"{shown}: cannot connect: {str(e).strip().splitlines()[0]}") from None
        super().__init__(connection, shown)

    def version(self) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('schema_version') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return 0
            cursor.execute("SELECT version FROM schema_version")
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    @contextlib.contextmanager
    def transaction(self):
        with self.connection.transaction(), self.connection.cursor() as cursor:
            yield cursor
