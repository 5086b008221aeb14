"""The shipped Prometheus rules: valid, doing what their tests say (Debian's promtool), and built on metrics a real
daemon exposes."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon import http_get, running_daemon

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "streamgenre-rules.yml"
promtool = shutil.which("promtool")


@pytest.mark.skipif(promtool is None, reason="promtool is not installed (Debian: apt-get install prometheus)")
def test_the_rules_are_valid_and_pass_their_tests():
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run([promtool, "test", "rules", RULES.with_suffix(".test.yml").name], cwd=RULES.parent,
                           capture_output=True, text=True, timeout=60)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


def test_the_rules_use_metrics_the_daemon_exposes(music_file, tmp_path):
    used = set(re.findall(r"streamgenre_\w+", "\n".join(
        line for line in RULES.read_text().splitlines() if line.strip().startswith("expr"))))
    with running_daemon(f"song={music_file}", "--history", str(tmp_path / "h.sqlite3")) as (port, _):
        metrics = http_get(port, "/metrics")[1]
    exposed = set(re.findall(r"^(streamgenre_\w+?)(?:\{| )", metrics, re.M))
    cluster_only = {name for name in used if name.startswith("streamgenre_shard_")}  # --cluster exposes those
    assert used - cluster_only and used - cluster_only <= exposed, sorted(used - cluster_only - exposed)
