"""The example CI workflow: valid YAML whose commands name files and flags that exist."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from reports.__main__ import parser as reports_parser

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "sticky-loadtest.yml"


def commands() -> list[str]:
    data = yaml.safe_load(WORKFLOW.read_text())
    steps = data["jobs"]["loadtest"]["steps"]
    return [step["run"] for step in steps if "run" in step]


def test_it_deploys_runs_headless_gates_and_keeps_the_reports() -> None:
    text = "\n".join(commands())
    for needed in ("modal deploy modal_app/server.py", "scripts/modal_url.py",
                   "locustfiles/sticky.py StickyUser --headless", "--csv results/run",
                   "-m reports results/run"):
        assert needed in text
    for path in ("modal_app/server.py", "scripts/modal_url.py", "locustfiles/sticky.py"):
        assert (ROOT / path).is_file()
    assert "upload-artifact" in WORKFLOW.read_text()


def test_its_gates_are_flags_the_report_knows() -> None:
    (report,) = [c for c in commands() if "-m reports" in c]
    args = shlex.split(report.replace("\\\n", " "))
    parsed = reports_parser().parse_args(args[args.index("reports") + 1:])
    assert parsed.min_stickiness == 0.99 and parsed.max_error_rate == 0.01
    assert parsed.max_collateral == 0
