"""The verdict and the exit code: the classes that ask for affinity only; fail closed."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from locust import FastHttpUser, task
from locust.env import Environment
from locust.event import Events

from locustfiles.ending import STICKINESS_EXIT_CODE, WRITE_FAILED_EXIT_CODE, verdict
from locustfiles.recorder import Recorder
from locustfiles.summary import Stickiness


class Noop(FastHttpUser):
    host = "http://127.0.0.1:9"

    @task
    def noop(self) -> None:
        pass


def environment(tmp_path: Path, csv: bool = True) -> Environment:
    env = Environment(events=Events(), user_classes=[Noop], parsed_options=Namespace(
        csv_prefix=str(tmp_path / "run") if csv else None, exit_code_on_error=1,
        max_multi_container_sessions=0, headless=True))
    env.create_local_runner()
    return env


class Answer:
    def __init__(self, container: str) -> None:
        self.status_code = 200
        self.content = b'{"CONTAINER_ID":"%s"}' % container.encode()


def request(recorder: Recorder, session: str, user_class: str, affinity: str | None,
            container: str) -> None:
    context: dict[str, Any] = {"session_id": session, "user_class": user_class}
    if affinity is not None:
        context["affinity"] = affinity
    recorder.on_request(name="/", response_time=1.0, response=Answer(container), context=context,
                        exception=None, start_time=1.0)


def test_a_mixed_run_passes_when_the_sticky_class_is_sticky(tmp_path: Path) -> None:
    env = environment(tmp_path)
    recorder = Recorder()
    recorder.register(env)
    for container in ("ta-1", "ta-1", "ta-1"):
        request(recorder, "sticky", "StickyUser", "session", container)
    for container in ("ta-1", "ta-2", "ta-3"):  # the control wanders, as it should
        request(recorder, "control", "NonStickyUser", "none", container)
    recorder.close()
    recorder.set_exit_code(env)
    assert env.process_exit_code is None
    lines = recorder.report_lines()
    assert lines[-1] == "  PASS: 0 sticky sessions saw more than one container (allowed 0)"
    assert lines[1].startswith("  StickyUser (sends Modal-Session-Id; judged)")
    assert any(line.startswith("  NonStickyUser (sends no session; control, not judged)")
               for line in lines)


def test_a_strict_class_is_judged_whatever_its_name(tmp_path: Path) -> None:
    env = environment(tmp_path)
    recorder = Recorder()
    recorder.register(env)
    request(recorder, "se-1", "MySessions", "strict", "ta-1")
    request(recorder, "se-1", "MySessions", "strict", "ta-2")
    recorder.close()
    recorder.set_exit_code(env)
    assert env.process_exit_code == STICKINESS_EXIT_CODE
    assert recorder.verdict().startswith("FAIL: 1 sticky sessions")


def test_nothing_to_judge_is_said_and_never_passes(tmp_path: Path) -> None:
    env = environment(tmp_path, csv=False)
    recorder = Recorder()
    recorder.register(env)
    request(recorder, "c", "NonStickyUser", "none", "ta-1")
    request(recorder, "c", "NonStickyUser", "none", "ta-1")
    recorder.close()
    recorder.set_exit_code(env)
    assert env.process_exit_code == 4  # nothing judged: never exit 0 (README, exit codes)
    assert recorder.verdict().startswith("NOT JUDGED: no user class asks for affinity")
    one = Stickiness()
    one.add("s", "StickyUser", "session", 200, "ta-1", None)  # one answer: nothing to judge
    assert verdict(one.summarise(), 0).line == (
        "NOT JUDGED: no session of StickyUser had two answered requests (1 of 1 requests "
        "answered); exit code 4")


def test_a_write_failure_fails_the_run_with_exit_code_2(tmp_path: Path) -> None:
    env = environment(tmp_path)
    recorder = Recorder()
    recorder.register(env)
    request(recorder, "s", "StickyUser", "session", "ta-1")
    assert recorder.writer is not None
    recorder.writer.flush()
    recorder.writer._file.close()  # the disk goes away
    request(recorder, "s", "StickyUser", "session", "ta-1")
    recorder.writer.flush()
    recorder.close()
    recorder.set_exit_code(env)
    assert env.process_exit_code == WRITE_FAILED_EXIT_CODE
    result = recorder.verdict()
    assert result.startswith(f"FAIL: the request file could not be written (cannot write "
                             f"{tmp_path}/run_requests.arrows: ")
    assert "PASS" not in "\n".join(recorder.report_lines())


def test_a_pass_under_an_allowance_says_the_report_judges_the_moves() -> None:
    """With --max-multi-container-sessions n (a churn run) the line only bounds the moves: a
    router that moved sessions between survivors passes it, so it must send the user to the
    report, which judges collateral per answer."""
    s = Stickiness()
    s.add("a", "StickyUser", "session", 200, "ta-1", None)
    s.add("a", "StickyUser", "session", 200, "ta-2", None)  # moved: forced or collateral?
    for _ in range(2):
        s.add("b", "StickyUser", "session", 200, "ta-3", None)
    result = verdict(s.summarise(), 5)
    assert result.exit_code is None
    assert result.line.startswith("PASS: 1 sticky sessions saw more than one container "
                                  "(allowed 5); ")
    assert "python -m reports judges them" in result.line
    assert verdict(s.summarise(), 1).line.endswith("python -m reports judges them")
    unmoved = Stickiness()
    for sid, cid in (("a", "ta-1"), ("a", "ta-1"), ("b", "ta-2"), ("b", "ta-2")):
        unmoved.add(sid, "StickyUser", "session", 200, cid, None)
    assert verdict(unmoved.summarise(), 5).line == (
        "PASS: 0 sticky sessions saw more than one container (allowed 5)")
