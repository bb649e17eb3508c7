"""The web UI's Stickiness tab: the summary and one row per session, live, with a CSV download.

Locust 2.47's React UI shows the extra tabs listed in `web_ui.template_args["extended_tabs"]`,
as tables laid out by `"extended_tables"`, and refills them from the `extended_stats` of each
`/stats/requests` answer it polls (every 2 s); an `after_request` hook adds ours there. The
first rows of the table are the summary: the verdict ("PASS: 0 sticky sessions saw more than
one container ...", "NOT JUDGED: ..." or "FAIL: ..."), any worker that lost its last batch, any
note (e.g. a class whose users record no affinity), and one row per user class ("ALL n sessions
(sends Modal-Session-Id; judged): on more than one container k/n, session stickiness ...,
same-container rate ..."); then the sessions, those on most containers first (at most
`ROW_LIMIT`). Every session is in the CSV, linked from the
"Download Data" tab (`extended_csv_files`) and served at `stickiness/csv`; `stickiness`
serves the same as JSON. Both routes, like Locust's own, require a login under `--web-login`.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, make_response, request

from locustfiles.summary import TABLE_STRUCTURE

if TYPE_CHECKING:
    from locust.web import WebUI

    from locustfiles.recorder import Recorder

TAB = "stickiness"
ROW_LIMIT = 500


def install(web_ui: WebUI, recorder: Recorder) -> None:
    """Declare the tab, add its data to /stats/requests, and serve its CSV and JSON."""
    args = web_ui.template_args
    args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "Stickiness", "key": TAB}]
    args["extended_tables"] = [*args.get("extended_tables", []),
                               {"key": TAB, "structure": TABLE_STRUCTURE}]
    args["extended_csv_files"] = [*args.get("extended_csv_files", []),
                                  {"href": f"./{TAB}/csv", "title": "Download stickiness CSV"}]
    app = web_ui.app
    assert app is not None
    options = web_ui.environment.parsed_options
    blueprint = Blueprint(TAB, __name__, url_prefix=getattr(options, "web_base_path", "") or "")

    @blueprint.route(f"/{TAB}/csv")
    @web_ui.auth_required_if_enabled
    def stickiness_csv() -> Response:
        response = make_response(recorder.stickiness.csv_text())
        response.headers["Content-Type"] = "text/csv"
        response.headers["Content-Disposition"] = (
            f"attachment;filename=stickiness_{int(time.time())}.csv")
        return response

    @blueprint.route(f"/{TAB}")
    @web_ui.auth_required_if_enabled
    def stickiness_json() -> Response:
        return jsonify({"rows": recorder.stickiness.table(ROW_LIMIT),
                        "verdict": recorder.verdict(), "lost": recorder.lost_tails(),
                        "recorded": recorder.run_recorded})

    app.register_blueprint(blueprint)

    @app.after_request
    def add_extended_stats(response: Response) -> Response:
        if (not request.path.endswith("/stats/requests") or response.status_code != 200
                or not response.is_json):
            return response
        data: Any = response.get_json()
        if isinstance(data, dict):
            extended = [e for e in data.get("extended_stats", []) if e.get("key") != TAB]
            extended.append({"key": TAB, "data": recorder.tab_rows(ROW_LIMIT)})
            data["extended_stats"] = extended
            response.set_data(json.dumps(data))
        return response
