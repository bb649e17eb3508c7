"""summary.json at the boundary: `load_summary` parses a file into the typed Summary once,
and refuses another schema, a missing or mistyped key, or a file that is not JSON with one
line naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports import load_run
from reports.errors import CorruptInput, MissingInput
from reports.summary import SCHEMA_VERSION, Summary, SummaryMismatch, load_summary


def written(tmp_path: Path, data: object, name: str = "run_summary.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_a_written_summary_reads_back_as_the_same_typed_summary(three_switched: str,
                                                                tmp_path: Path) -> None:
    summary = load_run(three_switched).analysis.summary
    path = tmp_path / "three_summary.json"
    path.write_text(summary.to_json())
    parsed = load_summary(path)
    assert parsed == summary
    assert parsed.latency["all"].p95_ms == summary.latency["all"].p95_ms
    assert type(parsed.user_classes["StickyUser"]).__name__ == "UserClassSummary"


def test_keys_it_does_not_know_are_ignored(three_switched: str, tmp_path: Path) -> None:
    data = load_run(three_switched).summary()
    data["added_later"] = {"x": 1}
    assert load_summary(written(tmp_path, data)).requests == data["requests"]


@pytest.mark.parametrize("version", [1, 3, None, "2"])
def test_another_schema_is_refused_in_one_line_naming_the_file(
        three_switched: str, tmp_path: Path, version: object) -> None:
    data = load_run(three_switched).summary()
    data["schema_version"] = version
    if version is None:
        del data["schema_version"]
    path = written(tmp_path, data)
    with pytest.raises(SummaryMismatch) as raised:
        load_summary(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: summary schema_version {version!r}")
    assert f"reads only {SCHEMA_VERSION}" in message and "\n" not in message


@pytest.mark.parametrize(("change", "where"), [
    (lambda d: d.pop("requests"), "requests: field required"),
    (lambda d: d.update(sessions="12"), "sessions: input should be a valid integer"),
    (lambda d: d["latency"]["all"].update(p95_ms="fast"), "latency.all.p95_ms: input"),
    (lambda d: d.update(gates=[{"gate": "min_stickiness"}]), "gates.0.threshold: field"),
])
def test_a_missing_or_mistyped_key_is_one_line(three_switched: str, tmp_path: Path,
                                               change: object, where: str) -> None:
    data = load_run(three_switched).summary()
    change(data)  # type: ignore[operator]
    path = written(tmp_path, data)
    with pytest.raises(SummaryMismatch) as raised:
        load_summary(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: not a schema 2 summary: {where}"), message
    assert "\n" not in message


def test_no_file_or_no_json_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MissingInput, match="no summary file"):
        load_summary(tmp_path / "none_summary.json")
    bad = tmp_path / "bad_summary.json"
    bad.write_text('{"schema_version": 2, ')
    with pytest.raises(CorruptInput, match=r"bad_summary.json: not JSON"):
        load_summary(bad)
    with pytest.raises(SummaryMismatch, match="a JSON object expected"):
        load_summary(written(tmp_path, [1, 2]))
    with pytest.raises(SummaryMismatch, match="from a notebook: summary schema_version 1"):
        Summary.from_dict({"schema_version": 1}, "from a notebook")
