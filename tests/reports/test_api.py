"""The pandas API: the DataFrames of docs/api.md, with exactly its columns, agreeing with the
summary and with an independent pandas computation on the request file."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from reports import compare, load_run
from reports.load import MissingInput
from tests.reports.conftest import T0, A, B, Row, write_requests

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_columns() -> dict[str, list[str]]:
    """Per `run.X` section of docs/api.md, the column names of its table, in order."""
    text = (DOCS / "api.md").read_text()
    out: dict[str, list[str]] = {}
    for section in re.split(r"\n## ", text)[1:]:
        head = section.splitlines()[0]
        match = re.match(r"`run\.(\w+)`", head)
        if not match or match.group(1) == "summary":
            continue
        names: list[str] = []
        for line in section.splitlines():
            if line.startswith("| `"):
                names += re.findall(r"`(\w+)`", line.split("|")[1])
        out[match.group(1)] = names
    return out


def test_every_frame_has_exactly_the_documented_columns(scale_up: tuple[str, int]) -> None:
    prefix, _ = scale_up
    run = load_run(prefix)
    docs = documented_columns()
    assert set(docs) == {"requests", "sessions", "containers", "changes", "epochs", "timeline",
                         "latency"}
    for name, columns in docs.items():
        frame = getattr(run, name)
        assert isinstance(frame, pd.DataFrame)
        assert list(frame.columns) == columns, name


def test_frames_agree_with_the_summary(scale_up: tuple[str, int]) -> None:
    prefix, moved = scale_up
    run = load_run(prefix)
    s = run.summary()
    assert s["schema_version"] == 2
    assert len(run.requests) == s["requests"] and len(run.sessions) == s["sessions"]
    assert run.changes.remapped.tolist() == [moved] and run.changes.collateral.tolist() == [1]
    assert run.containers.requests.sum() == s["ok_requests"]
    assert run.timeline.requests.sum() == s["requests"]
    assert run.requests["session_id"].dtype == "category"
    lat = run.latency.set_index(["state", "cache"])
    assert lat.loc[("all", "all"), "count"] == s["latency"]["all"]["count"]
    assert lat.loc[("repeat", "all"), "p95_ms"] == pytest.approx(s["latency"]["repeat"]["p95_ms"])
    assert run.requests.flap.sum() == s["flaps"]


def test_session_stickiness_matches_the_users_one_liner(three_switched: str) -> None:
    """The figure a user would compute by hand from the request file, with pandas."""
    raw = pd.read_parquet(three_switched + "_requests.parquet")
    per = raw.groupby("session_id").container_id.nunique()
    by_hand = float((per == 1).mean())
    run = load_run(three_switched)
    assert run.summary()["session_stickiness"] == pytest.approx(by_hand)
    assert (run.sessions.containers == 1).mean() == pytest.approx(by_hand)


def test_controls_are_apart_and_affinity_recorded(tmp_path: Path) -> None:
    rows = [Row(T0 + j, f"st{i}", A, affinity="session") for i in range(5) for j in range(4)]
    rows += [Row(T0 + j, f"ns{i}", (A, B)[j % 2], user_class="NonStickyUser",
                 affinity="none") for i in range(5) for j in range(4)]
    write_requests(tmp_path / "mix_requests.parquet", rows)
    run = load_run(str(tmp_path / "mix"))
    assert run.sessions.groupby("user_class", observed=True).judged.all().to_dict() == {
        "NonStickyUser": False, "StickyUser": True}
    assert run.requests.affinity.cat.categories.tolist() == ["session", "strict", "none"]
    assert run.summary()["affinity_source"] == "recorded"


def test_compare_is_a_frame(three_switched: str, tmp_path: Path) -> None:
    write_requests(tmp_path / "one_requests.parquet",
                   [Row(T0 + j, f"s{i}", A, response_time_ms=5.0)
                    for i in range(20) for j in range(5)])
    table = compare(load_run(str(tmp_path / "one")), three_switched)
    assert list(table.columns) == ["kind", "a", "b", "delta"]
    assert table.index.name == "metric"
    assert table.loc["session_stickiness", "delta"] == pytest.approx(-0.06)
    assert table["a"].isna()["ttft_all_p50"]


def test_a_control_run_is_compared_by_its_control_classes(tmp_path: Path) -> None:
    write_requests(tmp_path / "st_requests.parquet",
                   [Row(T0 + j, f"st{i}", A, affinity="session")
                    for i in range(5) for j in range(4)])
    write_requests(tmp_path / "ns_requests.parquet",
                   [Row(T0 + j, f"ns{i}", (A, B)[j % 2], user_class="NonStickyUser",
                        affinity="none") for i in range(5) for j in range(4)])
    control = load_run(str(tmp_path / "ns"))
    assert control.summary()["session_stickiness"] is None  # nothing it judges
    assert control.summary()["judged_classes"] == []
    table = compare(str(tmp_path / "st"), control)
    assert table.loc["session_stickiness", "a"] == 1.0
    assert table.loc["session_stickiness", "b"] == 0.0  # the controls' figure, not empty
    assert table.loc["switches", "b"] == 15
    assert table.loc["same_container_rate", "b"] == 0.0


def test_bad_input_raises_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(MissingInput, match="no request file"):
        load_run(str(tmp_path / "nothing"))
