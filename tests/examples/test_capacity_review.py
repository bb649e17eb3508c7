"""examples/capacity_review.ipynb, run as shipped: `jupyter execute` from the repository root and
from examples/ (the kernel starts in the notebook's folder, as Jupyter and nbconvert start it),
on the shared real runs (tests/support/recorded.py): A the NonStickyUser reference, B the
StickyUser candidate with a scale-up and a kill during its load, both with the KV-cache
simulation. The prefixes come relative to the root, through RUN_A and RUN_B; the notebook must
answer with the figures the report API gives, and claim nothing it has no evidence for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.recorded import RecordedPair

NOTEBOOK = ROOT / "examples" / "capacity_review.ipynb"


def execute(cwd: Path, runs: dict[str, str], out: Path) -> dict[str, Any]:
    """`jupyter execute` in CWD (the notebook named relative to it); the ANSWER it printed."""
    jupyter = Path(sys.executable).with_name("jupyter")
    done = subprocess.run([str(jupyter), "execute", os.path.relpath(NOTEBOOK, cwd),
                           f"--output={out}"], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env={**os.environ, **runs}, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    notebook = json.loads(out.with_suffix(".ipynb").read_text())
    text = "\n".join("".join(o.get("text", "")) for cell in notebook["cells"]
                     for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    answer: dict[str, Any] = json.loads(text[text.index("ANSWER ") + 7:].splitlines()[0])
    answer["text"] = text
    answer["displays"] = [o for cell in notebook["cells"] for o in cell.get("outputs", [])
                          if o.get("output_type") == "display_data"]
    return answer


def relative(prefix: str) -> str:
    return os.path.relpath(prefix, ROOT)  # a prefix as a user at the root would give it


def test_from_the_root_it_answers_from_two_real_runs(recorded_pair: RecordedPair,
                                                     tmp_path: Path) -> None:
    from reports import load_run

    runs = {"RUN_A": relative(recorded_pair.control), "RUN_B": relative(recorded_pair.sticky)}
    answer = execute(ROOT, runs, tmp_path / "review")
    a, b = load_run(recorded_pair.control), load_run(recorded_pair.sticky)
    sa, sb = a.summary(), b.summary()
    assert answer["hit_rate"] == pytest.approx([sa["cache"]["hit_rate"],
                                                sb["cache"]["hit_rate"]])
    assert answer["p95_ms"] == pytest.approx([sa["latency"]["all"]["p95_ms"],
                                              sb["latency"]["all"]["p95_ms"]])
    # the sticky candidate keeps every conversation on one replica: its cache hits far more
    assert answer["hit_rate"][1] > answer["hit_rate"][0]
    assert answer["better_hit_rate"] == "B"
    assert answer["membership_changes"] == len(b.changes) >= 1
    assert ("at equal load" in answer["text"]) == answer["equal_load"]
    held = answer["collateral"] == answer["flaps"] == 0
    assert answer["churn"] == ("held" if held else "broke")
    assert ("stickiness held under churn" in answer["text"]) == held
    # the sizing follows from the figures it printed
    if answer["capacity_per_replica"] is not None:
        assert answer["replicas_needed"] >= 1 and "replicas" in answer["text"]
    assert answer["skew"] >= 1.0 and "busiest replica" in answer["text"]
    # the chart keeps a static form for an HTML export
    (chart,) = [d for d in answer["displays"]
                if "application/vnd.plotly.v1+json" in d["data"]]
    assert "<table" in "".join(chart["data"]["text/html"])


def test_from_examples_a_run_without_churn_claims_nothing_about_churn(
        recorded_pair: RecordedPair, tmp_path: Path) -> None:
    """B = the non-sticky run, which saw no membership change."""
    runs = {"RUN_A": relative(recorded_pair.sticky), "RUN_B": relative(recorded_pair.control)}
    answer = execute(NOTEBOOK.parent, runs, tmp_path / "review")
    assert answer["membership_changes"] == 0 and answer["churn"] == "no churn"
    assert "held under churn" not in answer["text"]
    assert "says nothing about stickiness under churn" in answer["text"]
