"""The example CI workflow: valid YAML whose commands name files and flags that exist, gates
with --require-judged, and workflow inputs that reach the shell through env: only."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from reports.__main__ import parser as reports_parser

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "sticky-loadtest.yml"


def steps() -> list[dict[str, Any]]:
    data = yaml.safe_load(WORKFLOW.read_text())
    return list(data["jobs"]["loadtest"]["steps"])


def commands() -> list[str]:
    return [step["run"] for step in steps() if "run" in step]


def test_it_deploys_runs_headless_gates_and_keeps_the_reports() -> None:
    text = "\n".join(commands())
    for needed in ("modal deploy modal_app/server.py", "scripts/modal_url.py",
                   "locustfiles/sticky.py StickyUser --headless", "--csv results/run",
                   "-m reports results/run"):
        assert needed in text
    for path in ("modal_app/server.py", "scripts/modal_url.py", "locustfiles/sticky.py"):
        assert (ROOT / path).is_file()
    assert "upload-artifact" in WORKFLOW.read_text()


def test_its_gates_are_flags_the_report_knows_and_require_a_verdict() -> None:
    (report,) = [c for c in commands() if "-m reports" in c]
    args = shlex.split(report.replace("\\\n", " "))
    parsed = reports_parser().parse_args(args[args.index("reports") + 1:])
    assert parsed.require_judged
    assert parsed.min_stickiness == 0.99 and parsed.max_error_rate == 0.01
    assert parsed.max_flaps == 0 and parsed.min_sessions == 20
    # a run without churn has no membership change: a change gate would never be judged
    assert parsed.max_collateral is None and parsed.max_remap_excess is None


def test_no_expression_is_expanded_inside_a_shell_command() -> None:
    """Inputs go through env: (GitHub's guidance on script injection)."""
    for command in commands():
        assert "${{" not in command, command
    env = {k: v for step in steps() for k, v in (step.get("env") or {}).items()}
    passed = {m for v in env.values() for m in re.findall(r"inputs\.(\w+)", str(v))}
    inputs = yaml.safe_load(WORKFLOW.read_text())[True]["workflow_dispatch"]["inputs"]
    assert passed == set(inputs)
    text = "\n".join(commands())
    for name in env:
        assert f"${name}" in text or f"${{{name}}}" in text, name
