"""What aired, from the genre log: airtime per genre per stream, the longest segments, dead air; as a table, CSV,
JSON or a picture (a timeline per stream coloured by genre, its airtime bars beside it). Works on the database
alone, with or without a running daemon. Segments are clipped to the period asked for, so the figures of a stream
add up to the time it was served in that period."""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from collections import defaultdict

from .segments import DEAD_AIR

LONGEST = 5  # segments listed per stream
RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: datetime.datetime | None = None) -> float:
    """Unix time from `2026-11-27T14:00` (ISO 8601; local time unless it gives an offset or Z), `2026-11-27`,
    Unix seconds, `-2h` (also s, m, d: before now), `today` or `yesterday` (local midnight). ValueError otherwise."""
    now = now or datetime.datetime.now().astimezone()
    text = text.strip()
    if match := RELATIVE.match(text):
        return now.timestamp() - float(match.group(1)) * UNITS[match.group(2)]
    if text in ("today", "yesterday"):
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - datetime.timedelta(days=text == "yesterday")).timestamp()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r}: not a time (use 2026-11-27T14:00, 2026-11-27, -2h, today, yesterday or Unix "
                         "seconds)") from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def clipped(segments: list[dict], since: float | None, until: float | None) -> list[dict]:
    """The segments cut to [since, until]; those left with no time dropped."""
    out = []
    for s in segments:
        start = max(s["start_time"], since) if since is not None else s["start_time"]
        end = min(s["end_time"], until) if until is not None else s["end_time"]
        if end > start:
            out.append(s | {"start_time": start, "end_time": end})
    return out


def summarize(segments: list[dict]) -> dict:
    """Per stream: seconds served, seconds per genre (dead air as its own entry), and the longest segments."""
    streams: dict[str, dict] = {}
    for s in segments:
        entry = streams.setdefault(s["stream"], {"served": 0.0, "airtime": defaultdict(float), "segments": []})
        seconds = s["end_time"] - s["start_time"]
        entry["served"] += seconds
        entry["airtime"][s["genre"] if s["kind"] != DEAD_AIR else DEAD_AIR] += seconds
        entry["segments"].append(s)
    return {name: {"served_seconds": round(e["served"], 3),
                   "airtime": {g: {"seconds": round(t, 3), "percent": round(100 * t / e["served"], 2)}
                               for g, t in sorted(e["airtime"].items(), key=lambda kv: -kv[1])},
                   "dead_air_seconds": round(e["airtime"].get(DEAD_AIR, 0.0), 3),
                   "longest": sorted(e["segments"], key=lambda s: s["start_time"] - s["end_time"])[:LONGEST]}
            for name, e in sorted(streams.items())}


def as_json(summary: dict, since: float | None, until: float | None) -> str:
    from .store import segment_json

    out = {"since": since, "until": until,
           "streams": {n: e | {"longest": [segment_json(s) for s in e["longest"]]} for n, e in summary.items()}}
    return json.dumps(out, indent=1)


def as_csv(summary: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["stream", "genre", "seconds", "minutes", "percent"])
    for name, e in summary.items():
        for genre, a in e["airtime"].items():
            writer.writerow([name, genre, a["seconds"], round(a["seconds"] / 60, 2), a["percent"]])
    return buffer.getvalue()


def as_table(summary: dict) -> str:
    lines = [f"{'stream':16} {'genre':10} {'minutes':>9} {'%':>6}"]
    for name, e in summary.items():
        for genre, a in e["airtime"].items():
            shown = "dead air" if genre == DEAD_AIR else genre
            lines.append(f"{name[:16]:16} {shown:10} {a['seconds'] / 60:9.1f} {a['percent']:6.1f}")
        lines.append(f"{name[:16]:16} {'served':10} {e['served_seconds'] / 60:9.1f} {100.0:6.1f}")
    lines.append("")
    lines.append("longest segments:")
    for name, e in summary.items():
        for s in e["longest"]:
            what = "dead air" if s["kind"] == DEAD_AIR else s["genre"]
            title = f"  {s['title']}" if s["title"] else ""
            lines.append(f"{name[:16]:16} {_local(s['start_time'])} - {_local(s['end_time'])[11:]}  {what:10} "
                         f"{(s['end_time'] - s['start_time']) / 60:6.1f} min{title}")
    return "\n".join(lines) + "\n"


def plot(segments: list[dict], summary: dict, path: str) -> None:
    """One row per stream: its timeline coloured by genre (dead air grey), and its airtime per genre beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genres = sorted({s["genre"] for s in segments if s["kind"] != DEAD_AIR})
    palette = plt.get_cmap("tab10")
    colour = {g: palette(i % 10) for i, g in enumerate(genres)} | {DEAD_AIR: (0.6, 0.6, 0.6, 1.0)}
    rows = max(1, len(summary))
    fig, axes = plt.subplots(rows, 2, figsize=(13, 1.2 + 1.3 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [4, 1]})
    for (name, e), (timeline, bars) in zip(summary.items(), axes):
        for s in (s for s in segments if s["stream"] == name):
            label = DEAD_AIR if s["kind"] == DEAD_AIR else s["genre"]
            timeline.broken_barh([(_date(s["start_time"]), _days(s["end_time"] - s["start_time"]))], (0, 1),
                                 color=colour.get(label, "black"))
        timeline.set_yticks([])
        timeline.set_ylabel(name, rotation=0, ha="right", va="center")
        timeline.xaxis_date()
        names = list(e["airtime"])
        bars.barh(range(len(names)), [e["airtime"][g]["seconds"] / 60 for g in names],
                  color=[colour.get(g, "black") for g in names])
        bars.set_yticks(range(len(names)), ["dead air" if g == DEAD_AIR else g for g in names], fontsize=7)
        bars.invert_yaxis()
        bars.set_xlabel("minutes")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[g]) for g in [*genres, DEAD_AIR]]
    fig.legend(handles, [*genres, "dead air"], loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _local(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M:%S")


def _date(unix: float):
    """Unix time on matplotlib's date axis (local time)."""
    import matplotlib.dates

    return matplotlib.dates.date2num(datetime.datetime.fromtimestamp(unix))


def _days(seconds: float) -> float:
    return seconds / 86400
