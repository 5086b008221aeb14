"""The shipped Prometheus rules and Grafana board: the rules valid and doing what their tests say (Debian's
promtool), the board a Grafana dashboard, and both built on metrics a real daemon exposes."""

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from daemon import http_get, running_daemon

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "streamgenre-rules.yml"
BOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "streamgenre.json"
promtool = shutil.which("promtool")


@pytest.mark.skipif(promtool is None, reason="promtool is not installed (Debian: apt-get install prometheus)")
def test_the_rules_are_valid_and_pass_their_tests():
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run([promtool, "test", "rules", RULES.with_suffix(".test.yml").name], cwd=RULES.parent,
                           capture_output=True, text=True, timeout=60)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


def board_queries() -> list[str]:
    """Every query of the Grafana board, its panels' and its variables'."""
    board = json.loads(BOARD.read_text())
    assert board["uid"] == "streamgenre" and board["panels"] and {v["name"] for v in board["templating"]["list"]} \
        == {"datasource", "stream"}
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    return queries + [v["definition"] for v in board["templating"]["list"] if "definition" in v]


def test_the_rules_and_the_board_use_metrics_the_daemon_exposes(music_file, tmp_path):
    rules = [line for line in RULES.read_text().splitlines() if line.strip().startswith("expr")]
    with running_daemon(f"song={music_file}", "--history", str(tmp_path / "h.sqlite3"),
                        "--webhook", "http://127.0.0.1:9/hook") as (port, _):  # a target: its counters are shown
        for _ in range(50):
            metrics = http_get(port, "/metrics")[1]
            if "streamgenre_genre{" in metrics:  # the first window has been sent
                break
            time.sleep(0.2)
    exposed = set(re.findall(r"^((?:streamgenre|process)_\w+?)(?:\{| )", metrics, re.M))
    for name, queries in (("rules", rules), ("board", board_queries())):
        used = set(re.findall(r"(?:streamgenre|process)_\w+", "\n".join(queries)))
        cluster_only = {m for m in used if m.startswith("streamgenre_shard_")}  # --cluster and --workers expose those
        assert used - cluster_only and used - cluster_only <= exposed, (name, sorted(used - cluster_only - exposed))
