"""What aired: each stream's genre log (segments of one genre or of dead air) in SQLite or PostgreSQL, written by
the daemon (`recorder.py`), read by `/api/history` and `streamgenre report` (`report.py`). Schema: docs/history.md."""

from __future__ import annotations

import os
from pathlib import Path

from .store import HistoryError, open_store

__all__ = ["HistoryError", "default_location", "open_store"]


def default_location() -> str:
    """$STREAMGENRE_HISTORY, else history.sqlite3 in systemd's $STATE_DIRECTORY, else in
    $XDG_DATA_HOME/streamgenre (~/.local/share/streamgenre)."""
    if os.environ.get("STREAMGENRE_HISTORY"):
        return os.environ["STREAMGENRE_HISTORY"]
    root = os.environ.get("STATE_DIRECTORY")
    if not root:
        root = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "streamgenre"
    return str(Path(root) / "history.sqlite3")
