"""What aired, from the genre log: airtime per content kind (music, talk, noise, dead air) and per genre within the
music, per stream, and the longest segments; as a table, CSV, JSON or a picture (a timeline per stream coloured by
genre, talk and noise in their own colours, its airtime bars beside it). Works on the database
alone, with or without a running daemon. Segments are clipped to the period asked for, so the figures of a stream
add up to the time it was served in that period."""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from collections import defaultdict

from ..content import KINDS, MUSIC, NOISE, SAID, SILENCE, SPEECH

LONGEST = 5  # segments listed per stream
KIND_COLOURS = {SPEECH: (0.1, 0.1, 0.1, 1.0), NOISE: (0.85, 0.8, 0.6, 1.0), SILENCE: (0.82, 0.82, 0.82, 1.0)}
GENRE_PALETTE = [0, 1, 2, 3, 4, 5, 6, 8, 9]  # of matplotlib's tab10, without its grey (dead air's)
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
    """Per stream: seconds served, seconds per kind (`content`) and per label (`airtime`: each genre of the music
    and each other kind), each with its share of the time served, and the longest segments."""
    streams: dict[str, dict] = {}
    for s in segments:
        entry = streams.setdefault(s["stream"], {"served": 0.0, "airtime": defaultdict(float),
                                                 "content": defaultdict(float), "segments": []})
        seconds = s["end_time"] - s["start_time"]
        entry["served"] += seconds
        entry["content"][s["kind"]] += seconds
        entry["airtime"][s["genre"] if s["kind"] == MUSIC else s["kind"]] += seconds
        entry["segments"].append(s)

    def shares(times: dict, served: float) -> dict:
        return {k: {"seconds": round(t, 3), "percent": round(100 * t / served, 2)}
                for k, t in sorted(times.items(), key=lambda kv: -kv[1])}

    return {name: {"served_seconds": round(e["served"], 3),
                   "content": shares({k: e["content"].get(k, 0.0) for k in KINDS}, e["served"]),
                   "airtime": shares(e["airtime"], e["served"]),
                   "dead_air_seconds": round(e["content"].get(SILENCE, 0.0), 3),
                   "longest": sorted(e["segments"], key=lambda s: s["start_time"] - s["end_time"])[:LONGEST]}
            for name, e in sorted(streams.items())}


def nothing_found(spans: dict[str, tuple[float, float]], stream: str | None, since: float | None,
                  until: float | None) -> str:
    """Why a report is empty, and what the log does hold: "no segments of radio1 between ... (the log has: ...)"."""
    period = (f"between {_local(since) if since is not None else 'the start'} and "
              f"{_local(until) if until is not None else 'now'}")
    what = f"no segments of {stream!r} {period}" if stream else f"no segments {period}"
    if not spans:
        return f"{what}: the log is empty (the daemon writes it as it serves)"
    held = "; ".join(f"{name} {_local(a)} - {_local(b)}" for name, (a, b) in spans.items())
    return f"{what} (the log has: {held})"


def headline(entry: dict) -> str:
    """ "talk 31 %, music 62 %: rock 40 %, pop 22 %, dead air 7 %": the kinds that aired, the genres within the
    music (shares of all the time served)."""
    genres = [(g, a) for g, a in entry["airtime"].items() if g not in KINDS]
    parts = []
    for kind, a in entry["content"].items():
        if a["seconds"] <= 0:
            continue
        part = f"{SAID.get(kind, kind)} {a['percent']:.0f} %"
        if kind == MUSIC and genres:
            part += ": " + ", ".join(f"{g} {b['percent']:.0f} %" for g, b in genres)
        parts.append(part)
    return ", ".join(parts)


def as_json(summary: dict, since: float | None, until: float | None) -> str:
    from .store import segment_json

    out = {"since": since, "until": until,
           "streams": {n: e | {"longest": [segment_json(s) for s in e["longest"]]} for n, e in summary.items()}}
    return json.dumps(out, indent=1)


def as_csv(summary: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["stream", "kind", "genre", "seconds", "minutes", "percent"])
    for name, e in summary.items():
        for label, a in e["airtime"].items():
            kind, genre = (label, "") if label in KINDS else (MUSIC, label)
            writer.writerow([name, kind, genre, a["seconds"], round(a["seconds"] / 60, 2), a["percent"]])
    return buffer.getvalue()


def as_table(summary: dict) -> str:
    lines = [f"{name}: {headline(e)}" for name, e in summary.items()] + [""]
    lines.append(f"{'stream':16} {'airtime':12} {'minutes':>9} {'%':>6}")
    for name, e in summary.items():
        for kind, a in e["content"].items():
            if a["seconds"] <= 0:
                continue
            lines.append(f"{name[:16]:16} {SAID.get(kind, kind):12} {a['seconds'] / 60:9.1f} {a['percent']:6.1f}")
            if kind == MUSIC:
                for genre, b in e["airtime"].items():
                    if genre not in KINDS:
                        lines.append(f"{name[:16]:16}   {genre:10} {b['seconds'] / 60:9.1f} {b['percent']:6.1f}")
        lines.append(f"{name[:16]:16} {'served':12} {e['served_seconds'] / 60:9.1f} {100.0:6.1f}")
    lines.append("")
    lines.append("longest segments:")
    for name, e in summary.items():
        for s in e["longest"]:
            what = s["genre"] if s["kind"] == MUSIC else SAID.get(s["kind"], s["kind"])
            title = f"  {s['title']}" if s["title"] else ""
            lines.append(f"{name[:16]:16} {_local(s['start_time'])} - {_local(s['end_time'])[11:]}  {what:10} "
                         f"{(s['end_time'] - s['start_time']) / 60:6.1f} min{title}")
    return "\n".join(lines) + "\n"


def plot(segments: list[dict], summary: dict, path: str) -> None:
    """One row per stream: its timeline coloured by genre (talk black, noise sand, dead air grey), and its airtime
    per genre and kind beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates
    import matplotlib.pyplot as plt

    genres = sorted({s["genre"] for s in segments if s["kind"] == MUSIC})
    palette = plt.get_cmap("tab10")
    colour = {g: palette(GENRE_PALETTE[i % len(GENRE_PALETTE)]) for i, g in enumerate(genres)} | KIND_COLOURS
    rows = max(1, len(summary))
    fig, axes = plt.subplots(rows, 2, figsize=(13, 1.2 + 1.3 * rows), squeeze=False, sharex="col",
                             gridspec_kw={"width_ratios": [4, 1]})  # one time axis for every stream
    for (name, e), (timeline, bars) in zip(summary.items(), axes):
        for s in (s for s in segments if s["stream"] == name):
            label = s["genre"] if s["kind"] == MUSIC else s["kind"]
            timeline.broken_barh([(_date(s["start_time"]), _days(s["end_time"] - s["start_time"]))], (0, 1),
                                 color=colour.get(label, "black"))
        timeline.set_yticks([])
        timeline.set_ylabel(name, rotation=0, ha="right", va="center")
        timeline.xaxis_date()
        locator = matplotlib.dates.AutoDateLocator(minticks=4, maxticks=10)
        timeline.xaxis.set_major_locator(locator)
        timeline.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(locator))
        names = list(e["airtime"])
        bars.barh(range(len(names)), [e["airtime"][g]["seconds"] / 60 for g in names],
                  color=[colour.get(g, "black") for g in names])
        bars.set_yticks(range(len(names)), [SAID.get(g, g) for g in names], fontsize=7)
        bars.invert_yaxis()
        bars.set_xlabel("minutes")
    shown = [*genres, *(k for k in KIND_COLOURS if any(s["kind"] == k for s in segments))]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[g]) for g in shown]
    fig.legend(handles, [SAID.get(g, g) for g in shown], loc="lower center", ncol=max(1, len(handles)), fontsize=7,
               frameon=False)
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
