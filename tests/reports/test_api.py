"""The pandas API: the DataFrames of docs/api.md, with exactly its columns, agreeing with the
summary and with an independent pandas computation on the request file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from reports import compare, load_run
from reports.load import MissingInput
from tests.support import ROOT
from tests.support.rows import T0, A, B, Row, write_requests

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


def test_the_timeline_has_attribute_names_and_a_datetime(scale_up: tuple[str, int]) -> None:
    timeline = load_run(scale_up[0]).timeline
    assert all(name.isidentifier() for name in timeline.columns), list(timeline.columns)
    assert isinstance(timeline["time"].dtype, pd.DatetimeTZDtype)
    assert str(timeline["time"].dt.tz) == "UTC"
    assert timeline["time"].iloc[0] == pd.Timestamp(timeline["ts"].iloc[0], unit="s", tz="UTC")
    assert int(timeline.failed_503.sum()) == 0 and int(timeline.ok.sum()) > 0


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
    assert not table.index.str.startswith(("ttft_", "inter_token_gap_")).any()  # no stream


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
    assert table.loc["flaps", "a"] == 0 and table["b"].isna()["flaps"]  # b asks for no affinity


def test_bad_input_raises_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(MissingInput, match="no request file") as raised:
        load_run(str(tmp_path / "nothing"))
    assert "\n" not in str(raised.value)


def one_run(directory: Path, name: str) -> Path:
    return write_requests(directory / f"{name}_requests.parquet",
                          [Row(T0 + j, f"s{i}", A) for i in range(3) for j in range(3)])


def test_a_run_is_named_by_a_str_or_any_path_like(tmp_path: Path) -> None:
    one_run(tmp_path, "run")
    events = tmp_path / "log.jsonl"
    events.write_text("")
    by_text = load_run(str(tmp_path / "run")).summary()["requests"]
    assert load_run(tmp_path / "run").summary()["requests"] == by_text == 9
    assert load_run(tmp_path / "run_requests.parquet", events=str(events)).prefix == str(
        tmp_path / "run")
    assert load_run(tmp_path / "run", events=events).summary()["requests"] == 9
    assert compare(tmp_path / "run", str(tmp_path / "run"))["delta"].dropna().eq(0).all()


WRONG: list[Any] = [1, b"run", 3.0]  # what a user may pass by mistake


@pytest.mark.parametrize(("call", "expected"), [
    (lambda: load_run(WRONG[0]), r"load_run\(prefix\) must be a str or an os.PathLike, not int"),
    (lambda: load_run(WRONG[1]), "not bytes"),
    (lambda: load_run("run", events=WRONG[2]), r"load_run\(events=\) must be .* not float"),
    (lambda: compare(WRONG[0], WRONG[0]), r"compare\(a\) must be a Run .* not int"),
])
def test_a_run_of_the_wrong_type_is_a_type_error(call: Any, expected: str) -> None:
    with pytest.raises(TypeError, match=expected):
        call()


def test_a_mistyped_prefix_names_the_runs_that_exist(tmp_path: Path) -> None:
    for name in ("sticky", "nonsticky"):
        one_run(tmp_path, name)
    runs = f"the runs in {tmp_path}: {tmp_path}/nonsticky, {tmp_path}/sticky"
    with pytest.raises(MissingInput, match=re.escape(runs)):
        load_run(tmp_path / "stiky")
    with pytest.raises(MissingInput, match=re.escape(runs)):
        load_run(str(tmp_path) + "/")
    with pytest.raises(MissingInput, match=re.escape(f"{tmp_path / 'empty'} holds no run")):
        (tmp_path / "empty").mkdir()
        load_run(tmp_path / "empty" / "run")


def test_the_library_loads_no_presentation_layer() -> None:
    """`from reports import load_run` (and a run, and a comparison) needs neither plotly nor
    jinja2: the data layer imports nothing of the pages (a fresh interpreter tells)."""
    code = ("import sys; from reports import compare, load_run; "
            "import reports.api, reports.comparison; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'plotly', 'jinja2', 'markupsafe', 'locust', 'modal_app'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
