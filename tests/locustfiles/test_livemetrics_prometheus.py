"""Live metrics end to end: real Locust runs through the emulator, scraped by a real Prometheus
(Debian's), and the master of a `--processes 2` run counting every worker's requests."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modal_app.local.launch import stop_process
from tests.support.http import free_port
from tests.support.locust import finish, headless, locust_process, processes

PROMETHEUS = Path("/usr/bin/prometheus")
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "sticky-dashboard.json"


@contextlib.contextmanager
def prometheus(target_port: int, tmp: Path) -> Iterator[str]:
    """Prometheus scraping 127.0.0.1:target_port every second; its API's base URL."""
    port = free_port()  # --web.listen-address takes no port 0: the OS picks one first
    config = tmp / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                      "scrape_configs:\n  - job_name: locust\n    static_configs:\n"
                      f"      - targets: ['127.0.0.1:{target_port}']\n")
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        # its discovery hands the target over up to 5 s after start: wait for a first scrape
        # (failed: Locust is not up yet), so that none of the run is missed
        while not scraped_once(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus never scraped:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process(proc)


def scraped_once(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=5) as answer:
        targets = json.loads(answer.read())["data"]["activeTargets"]
    return bool(targets) and not targets[0]["lastScrape"].startswith("0001")


def query_raw(url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query (at a time, else now): the result vector."""
    params = {"query": promql, **({} if at is None else {"time": f"{at:.3f}"})}
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode(params)}",
                                timeout=10) as answer:
        data = json.loads(answer.read())
    assert data["status"] == "success", (promql, data)
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def query(url: str, promql: str) -> dict[str, float]:
    """An instant query; user_class (or "") -> value."""
    return {r["metric"].get("user_class", ""): float(r["value"][1])
            for r in query_raw(url, promql)}


def check_dashboard(url: str) -> None:
    """Every query of the Grafana dashboard runs on this Prometheus and, but for TTFT and
    errors (no stream, no error in this run), finds data, at the time of the last scrape
    (Locust has exited: at 'now' its series are stale)."""
    at = max(float(t) for r in query_raw(url, "sticky_live_containers[5m]")
             for t, _value in r["values"])
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        promql = expr.replace("$__rate_interval", "5s").replace("$user_class", ".*")
        result = query_raw(url, promql, at)
        if "first_token" not in expr and 'error!="none"' not in expr:
            assert result, f"no data for the dashboard's {expr}"


def last(url: str, metric: str) -> dict[str, float]:
    """The last value scraped (Locust has exited: its series are stale at 'now')."""
    return query(url, f"sum by (user_class) (last_over_time({metric}[5m]))")


@pytest.mark.skipif(not PROMETHEUS.exists(), reason="no /usr/bin/prometheus (Debian's)")
def test_prometheus_scrapes_stickiness_of_a_sticky_and_a_control_class(
        target: str, tmp_path: Path) -> None:
    metrics_port = free_port()
    with prometheus(metrics_port, tmp_path) as prom:
        args = headless(target, "StickyUser", "NonStickyUser",
                        extra=("--metrics-port", str(metrics_port), "--metrics-linger", "15",
                               "--pace-rps", "20"))
        with locust_process(*args, tmp=tmp_path) as run:
            result = finish(run)
        assert result.code == 0, result.output[-3000:]
        assert "metrics: final values scraped" in result.output
        # the final scrape reached Prometheus: its request count is Locust's
        deadline = time.monotonic() + 10
        while sum(last(prom, "sticky_requests_total").values()) != result.locust_requests:
            assert time.monotonic() < deadline, (last(prom, "sticky_requests_total"),
                                                 result.locust_requests)
            time.sleep(0.2)
        sessions = last(prom, "sticky_sessions")
        multi = last(prom, "sticky_multi_container_sessions")
        switches = last(prom, "sticky_switches_total")
        check_dashboard(prom)
    assert sessions == {"StickyUser": 5.0, "NonStickyUser": 5.0}
    assert "StickyUser (sends Modal-Session-Id; judged): 5 sessions" in result.output
    assert multi["StickyUser"] == 0
    assert switches["StickyUser"] == 0
    # the control spreads over the 3 replicas: every session moved, many times
    assert multi["NonStickyUser"] == 5
    assert switches["NonStickyUser"] > 100


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_master_counts_every_workers_requests(target: str, tmp_path: Path) -> None:
    metrics_port = free_port()
    args = headless(target, "StickyUser", extra=(
        *processes(2), "--metrics-port", str(metrics_port), "--metrics-linger", "20",
        "--pace-rps", "20"))
    with locust_process(*args, tmp=tmp_path) as run:
        run.wait_for(r"metrics: waiting up to", timeout=60)
        found = scrape(metrics_port)
        result = finish(run)
    assert result.code == 0, result.output[-3000:]
    requests = sum(v for (name, _labels), v in found.items() if name == "sticky_requests_total")
    workers = set(result.rows.column("worker").to_pylist())
    assert len(workers) == 2  # both workers sent load
    assert requests == result.locust_requests == result.rows.num_rows > 0
    assert found[("sticky_sessions", frozenset({("user_class", "StickyUser")}))] == 10
    assert found[("sticky_multi_container_sessions",
                  frozenset({("user_class", "StickyUser")}))] == 0


def test_a_port_taken_is_one_line_and_exit_2(target: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        args = headless(target, "StickyUser", extra=("--metrics-port", str(port)))
        with locust_process(*args, tmp=tmp_path) as run:
            code = run.wait(60)
    assert code == 2
    lines = [line for line in run.output().splitlines() if "--metrics-port" in line]
    assert len(lines) == 1 and f"cannot serve metrics on 127.0.0.1:{port}" in lines[0], lines
    assert "Traceback" not in run.output()
