"""Issue 9 on the report side, on synthetic request frames with known answers: affinity classes
judged and controls beside, the settled owner after a late membership change (event log and
inferred path), flaps only inside settled epochs, verdicts that follow the rules."""

from __future__ import annotations

import json
from hashlib import blake2b
from pathlib import Path

import pytest

from modal_app.local.rendezvous import pick
from reports import load_run
from reports.__main__ import main
from tests.support.rows import (
    T0,
    A,
    B,
    C,
    D,
    Row,
    removed,
    session_ids,
    write_events,
    write_requests,
)

KILL_AT = T0 + 10.0
LEARN_S = 0.3  # the proxy learns of the kill this late (a health-check interval)
STEP_S = 0.1  # each session sends a request every STEP_S


def modulo(key: str, live: list[str]) -> str:
    """A deliberately non-rendezvous policy: the key's hash modulo the sorted live set."""
    digest = int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big")
    ordered = sorted(live)
    return ordered[digest % len(ordered)]


def late_remap_rows(policy: str, sessions: int = 120) -> list[Row]:
    """D is killed at KILL_AT; the proxy routes by the old live set until KILL_AT + LEARN_S
    (requests to D fail), then by the new one. 20 s of traffic, one request per STEP_S."""
    route = pick if policy == "rendezvous" else modulo
    before, after = [A, B, C, D], [A, B, C]
    rows = []
    for i, sid in enumerate(session_ids(sessions)):
        ts = T0 + i * 0.0007
        while ts < T0 + 20:
            owner = route(sid, before if ts < KILL_AT + LEARN_S else after)
            if owner == D and ts >= KILL_AT:
                rows.append(Row(ts, sid, None, 0, 2.0, error="ConnectionResetError",
                                affinity="session"))
            else:
                rows.append(Row(ts, sid, owner, affinity="session"))
            ts += STEP_S
    return rows


def write_late_run(tmp_path: Path, policy: str, with_events: bool) -> str:
    prefix = str(tmp_path / f"{policy}_{'events' if with_events else 'inferred'}")
    write_requests(Path(prefix + "_requests.parquet"), late_remap_rows(policy))
    if with_events:
        write_events(Path(prefix + "_events.jsonl"), [
            {"ts": T0 - 1, "event": "snapshot", "live": [A, B, C, D]},
            removed(KILL_AT, D, [A, B, C])])
    return prefix


@pytest.mark.parametrize("with_events", [True, False], ids=["event-log", "inferred"])
def test_late_remaps_with_rendezvous_give_no_collateral_and_no_flaps(
        tmp_path: Path, with_events: bool) -> None:
    run = load_run(write_late_run(tmp_path, "rendezvous", with_events))
    s = run.summary()
    assert s["epochs_source"] == ("events" if with_events else "inferred")
    (change,) = s["membership_changes"]
    on_d = sum(pick(sid, [A, B, C, D]) == D for sid in session_ids(120))
    assert change["removed"] == [D] and change["sessions"] == 120
    assert (change["remapped"], change["collateral"]) == (on_d, 0)
    assert s["flaps"] == 0 and s["settled_stickiness"] == 1.0
    assert s["verdicts"]["flaps"] == "good" and s["verdicts"]["collateral"] == "good"
    # a perfect churn run is not read as a failure, though sessions saw two containers
    assert s["session_stickiness"] < 1 and s["verdicts"]["session_stickiness"] == "neutral"


@pytest.mark.parametrize("with_events", [True, False], ids=["event-log", "inferred"])
def test_late_remaps_with_a_modulo_policy_are_collateral_not_flaps(
        tmp_path: Path, with_events: bool) -> None:
    prefix = write_late_run(tmp_path, "modulo", with_events)
    s = load_run(prefix).summary()
    (change,) = s["membership_changes"]
    ids = session_ids(120)
    survivors_moved = sum(modulo(sid, [A, B, C, D]) != D
                          and modulo(sid, [A, B, C, D]) != modulo(sid, [A, B, C])
                          for sid in ids)
    assert survivors_moved > 10  # the scenario does what it says
    assert change["collateral"] == survivors_moved
    assert change["remapped"] == sum(modulo(s_, [A, B, C, D]) != modulo(s_, [A, B, C])
                                     for s_ in ids)
    assert s["flaps"] == 0  # the moves happened while the change settled
    assert s["verdicts"]["collateral"] == "bad"
    assert main([prefix, "--max-collateral", "0"]) == 1


def test_without_settling_the_late_moves_would_read_as_flaps(tmp_path: Path) -> None:
    """The old reading (first answer after the change): what --settle 0 gives."""
    prefix = write_late_run(tmp_path, "modulo", with_events=True)
    s = load_run(prefix, settle_s=0.0).summary()
    assert s["flaps"] > 0 and s["membership_changes"][0]["collateral"] == 0


def test_a_switch_inside_a_settled_epoch_is_a_flap(tmp_path: Path) -> None:
    rows = [r for r in late_remap_rows("rendezvous") if r.session_id != "s0000"]
    sid = "s0000"
    home = pick(sid, [A, B, C])
    other = next(c for c in (A, B, C) if c != home)
    rows += [Row(T0 + 14 + j * 0.5, sid, other if j == 3 else home, affinity="session")
             for j in range(8)]
    prefix = str(tmp_path / "flap")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    write_events(Path(prefix + "_events.jsonl"), [
        {"ts": T0 - 1, "event": "snapshot", "live": [A, B, C, D]},
        removed(KILL_AT, D, [A, B, C])])
    run = load_run(prefix)
    s = run.summary()
    assert s["flaps"] == 2 and s["sessions_with_flaps"] == 1
    assert run.sessions.set_index("session_id").loc[sid, "flaps"] == 2
    assert s["settled_stickiness"] < 1 and s["verdicts"]["flaps"] == "bad"
    flapped = run.requests[run.requests.flap]
    assert set(flapped.session_id) == {sid}


def mixed_rows(affinity: bool) -> list[Row]:
    rows = [Row(T0 + j, f"st{i:02d}", pick(f"st{i:02d}", [A, B, C]),
                affinity="session" if affinity else None) for i in range(20) for j in range(6)]
    rows += [Row(T0 + j + 0.5, f"ns{i:02d}", (A, B, C)[(i + j) % 3], user_class="NonStickyUser",
                 affinity="none" if affinity else None) for i in range(20) for j in range(6)]
    return rows


def test_a_mixed_run_judges_the_sticky_class_and_shows_the_control_beside(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = str(tmp_path / "mixed")
    write_requests(Path(prefix + "_requests.parquet"), mixed_rows(affinity=True))
    assert main([prefix, "--min-stickiness", "0.99", "--require-judged"]) == 0
    s = json.loads(Path(prefix + "_summary.json").read_text())
    assert s["affinity_source"] == "recorded" and s["judged_classes"] == ["StickyUser"]
    assert s["session_stickiness"] == 1.0 and s["sessions_multi_request"] == 20
    control = s["user_classes"]["NonStickyUser"]
    assert (control["affinity"], control["judged"], control["session_stickiness"]) == (
        "none", False, 0.0)
    assert control["same_container_rate"] == 0.0 and s["same_container_rate"] == 1.0
    assert "control NonStickyUser (not judged)" in capsys.readouterr().out


def test_a_file_without_affinity_judges_every_class_and_says_so(tmp_path: Path) -> None:
    prefix = str(tmp_path / "old")
    write_requests(Path(prefix + "_requests.parquet"), mixed_rows(affinity=False))
    s = load_run(prefix).summary()
    assert s["affinity_source"] == "assumed"
    assert s["judged_classes"] == ["NonStickyUser", "StickyUser"]
    assert s["session_stickiness"] == 0.5
    assert any("affinity_source \"assumed\"" in note for note in s["notes"])
    assert s["user_classes"]["StickyUser"]["affinity"] is None


def test_only_controls_leave_the_stickiness_gates_not_judged(tmp_path: Path) -> None:
    prefix = str(tmp_path / "controls")
    write_requests(Path(prefix + "_requests.parquet"),
                   [r for r in mixed_rows(affinity=True) if r.affinity == "none"])
    assert main([prefix, "--min-stickiness", "0.9"]) == 0
    (gate,) = json.loads(Path(prefix + "_summary.json").read_text())["gates"]
    assert gate["verdict"] == "not judged" and "no class asks for affinity" in gate["reason"]
    assert main([prefix, "--min-stickiness", "0.9", "--require-judged"]) == 1


def test_streaming_figures(tmp_path: Path) -> None:
    rows = []
    for i, sid in enumerate(session_ids(10)):
        for j in range(10):
            hit = j > 0
            rows.append(Row(T0 + j + i * 0.01, sid, A if j < 8 or i else B,
                            cache="hit" if hit else "miss", ttfb_ms=1.0,
                            ttft_ms=5.0 if hit else 50.0, tokens=16,
                            max_gap_ms=10.0 + j, affinity="session"))
    prefix = str(tmp_path / "stream")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    run = load_run(prefix)
    s = run.summary()
    assert s["ttft"]["all"]["count"] == 100
    assert (s["ttft"]["hit"]["p50_ms"], s["ttft"]["miss"]["p50_ms"]) == (5.0, 50.0)
    assert s["ttft"]["miss"]["count"] == 10
    assert s["ttft_by_state"]["first"] == {"count": 10, "p50_ms": 50.0, "p95_ms": 50.0,
                                           "p99_ms": 50.0}
    assert s["ttft_by_state"]["after_switch"]["count"] == 1
    assert s["inter_token_gap"]["count"] == 100
    assert s["inter_token_gap"]["p50_ms"] == pytest.approx(14.5)
    lat = run.latency.set_index(["state", "cache"])
    assert lat.loc[("all", "hit"), "ttft_p50_ms"] == 5.0
    assert lat.loc[("all", "all"), "gap_count"] == 100
    assert run.requests.tokens.dtype == "Int32" and int(run.requests.tokens.sum()) == 1600


def test_a_run_without_streaming_has_null_streaming_figures(three_switched: str) -> None:
    s = load_run(three_switched).summary()
    assert (s["ttft"], s["ttft_by_state"], s["inter_token_gap"]) == (None, None, None)


def test_a_run_that_starts_while_a_change_settles_counts_no_flaps_from_it(
        tmp_path: Path) -> None:
    """The replicas came up just before the load did and the proxy learned of the last one
    late: the moves onto it are not flaps, and the change has no session before it."""
    ids = session_ids(60)
    rows = []
    for i, sid in enumerate(ids):
        for j in range(30):
            ts = T0 + j * 0.2 + i * 0.001
            live = [A, B, C] if ts < T0 + 0.5 else [A, B, C, D]
            rows.append(Row(ts, sid, pick(sid, live), affinity="session"))
    prefix = str(tmp_path / "startup")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    write_events(Path(prefix + "_events.jsonl"), [
        {"ts": T0 - 3, "event": "snapshot", "live": [A, B, C]},
        {"ts": T0 - 0.5, "event": "added", "container_id": D, "cause": "ready",
         "live": [A, B, C, D]}])
    s = load_run(prefix).summary()
    assert s["switches"] > 0 and s["flaps"] == 0
    (change,) = s["membership_changes"]
    assert change["at_offset_s"] < 0 and change["sessions"] == 0
    assert main([prefix, "--max-collateral", "0"]) == 0
    # judged per answer: the moves onto the late-learned newcomer are no collateral
    assert json.loads(Path(prefix + "_summary.json").read_text())["gates"][0]["verdict"] == \
        "passed"


def test_cut_and_short_streams_are_errors_of_their_own_class(tmp_path: Path) -> None:
    rows = [Row(T0 + j, "s1", A, ttft_ms=5.0, tokens=16, max_gap_ms=3.0, affinity="session")
            for j in range(6)]
    rows += [Row(T0 + 6, "s1", A, ttft_ms=6.0, tokens=4, affinity="session",
                 error="stream cut: connection closed after 4 tokens"),
             Row(T0 + 7, "s1", A, ttft_ms=6.0, tokens=10, affinity="session",
                 error="stream short: got 10 of 16 tokens")]
    prefix = str(tmp_path / "cut")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    run = load_run(prefix)
    s = run.summary()
    assert s["error_classes"]["stream_cut"] == 1 and s["error_classes"]["stream_short"] == 1
    assert (s["ok_requests"], s["errors"]) == (6, 2)
    assert s["ttft"]["all"]["count"] == 8  # its user saw the first token all the same
    assert s["ttft_by_state"]["repeat"]["count"] == 5
    assert run.requests.error_class.value_counts()["stream_cut"] == 1
    assert int(run.timeline.failed_stream_short.sum()) == 1


def test_the_settle_option_on_the_command_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    prefix = write_late_run(tmp_path, "modulo", with_events=True)
    assert main([prefix, "--max-flaps", "0"]) == 0
    assert json.loads(Path(prefix + "_summary.json").read_text())["settle_s"] == 2.0
    assert main([prefix, "--max-flaps", "0", "--settle", "0"]) == 1
    assert "gate --max-flaps failed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([prefix, "--settle", "-1"])
    assert exit_info.value.code == 2
    assert "settle_s must be a number >= 0" in capsys.readouterr().err
