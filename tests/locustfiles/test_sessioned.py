"""SessionedUser and proxy credentials, through real Locust runs against the emulator run as a
GA Modal Server (`--auth --sessioned`)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from locust.env import Environment

from locustfiles.sessioned import SessionedUser
from locustfiles.users import NonStickyUser, SessionUser, StickyUser, affinity
from modal_app.local.launch import emulator
from reports.__main__ import main as reports_main
from tests.support.http import emulator_control
from tests.support.locust import (
    SESSIONED,
    containers_per_session,
    finish,
    headless,
    locust_process,
    processes,
)

KEY, SECRET = "wk-harness-test-key", "ws-harness-secret-d41d8cd98f00b204"


@pytest.fixture()
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAL_PROXY_KEY", KEY)
    monkeypatch.setenv("MODAL_PROXY_SECRET", SECRET)


def test_sessioned_users_stay_on_their_container_across_a_scale_down(
        tmp_path: Path, credentials: None, capsys: pytest.CaptureFixture[str]) -> None:
    with emulator(3, "--auth", "--sessioned", "--no-replace") as emu, locust_process(
            *headless(emu.url, "SessionedUser", seconds=5, locustfile=SESSIONED,
                      extra=("-u", "12", "-r", "12", "--pace-rps", "20", "--churn", "2s:scale=1",
                             *processes(2))),
            tmp=tmp_path) as run:
        result = finish(run, timeout=90)
        live = list(emulator_control(emu.url, "/replicas"))
    assert result.code == 0, result.output[-3000:]
    seen = containers_per_session(result.rows, "SessionedUser")
    assert len(seen) == 12 and set(seen.values()) == {1}  # strict: one container each
    statuses = set(result.rows.column("status").to_pylist())
    assert statuses == {200}, statuses  # credentials sent, tokens live, nothing refused
    assert all(s.startswith("se-") for s in result.rows.column("session_id").to_pylist())
    assert set(result.rows.column("affinity").to_pylist()) == {"strict"}
    # every session was terminated on stop: the retired containers then stopped
    assert all(r["sessions"] == 0 for r in live)

    assert reports_main([str(run.prefix)]) == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith("_report.html") for p in written)
    for path in written:
        text = readable(path)
        assert SECRET not in text and KEY not in text, path
        assert not TOKEN.search(text), path  # no session token either
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err


TOKEN = re.compile(r"st-[A-Za-z0-9_-]{32}")


def readable(path: Path) -> str:
    """A file's content as text; a Parquet file's values, since its pages are compressed."""
    if path.suffix == ".parquet":
        return repr(pq.read_table(path).to_pylist())
    return path.read_bytes().decode("latin-1")


# ## Affinity: what each class asks for, from the headers it sends (contracts section 3)


def options(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "cache_key": False, "work_ms": 0.0, "stream_tokens": 0, "prompt_tokens": 256,
        "pace_rps": 0.0, "modal_app": "", "idle_timeout": 60, "wait_timeout": 10.0}
    return argparse.Namespace(**{**values, **overrides})


class RenamedSticky(StickyUser):
    """A StickyUser by another name: still asks for session affinity."""


class MySessioned(SessionedUser):
    """A subclass of SessionedUser: strict, whatever its name."""


class StickyInName(NonStickyUser):
    """Named like a sticky class, sends no header: a control."""


def started(user_class: type[SessionUser], url: str) -> SessionUser:
    """A user of that class (under its own name, with the host set), after its on_start."""
    bound = type(user_class.__name__, (user_class,), {"host": url})
    user = bound(Environment(user_classes=[bound], host=url, parsed_options=options()))
    user.on_start()
    return user


CLASSES: list[tuple[type[SessionUser], str]] = [
    (StickyUser, "session"), (RenamedSticky, "session"), (NonStickyUser, "none"),
    (StickyInName, "none"), (SessionedUser, "strict"), (MySessioned, "strict")]


def test_affinity_comes_from_the_headers_sent(credentials: None) -> None:
    with emulator(1, "--auth", "--sessioned") as emu:
        for user_class, expected in CLASSES:
            user = started(user_class, emu.url)
            try:
                assert user.context() == {"session_id": user.session_id,
                                          "user_class": user_class.__name__,
                                          "affinity": expected}, user_class
                assert affinity(user.headers) == expected
            finally:
                user.on_stop()


def test_affinity_of_headers() -> None:
    assert affinity({}) == "none"
    assert affinity({"Modal-Key": "k", "Modal-Secret": "s"}) == "none"
    assert affinity({"modal-session-id": "abc"}) == "session"
    assert affinity({"Modal-Session-Id": ""}) == "none"
    assert affinity({"Modal-Authorization": "Bearer st-x", "Modal-Session-Id": "a"}) == "strict"
    assert affinity({"Modal-Authorization": "Basic x"}) == "none"
