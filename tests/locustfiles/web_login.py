"""A locustfile for the tests: locustfiles/sticky.py behind `--web-login`.

Any user name logs in with the password "test"; see Locust's examples/web_ui_auth/basic.py.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, request, session, url_for
from flask_login import UserMixin, login_user
from locust import events
from werkzeug.wrappers import Response

from locustfiles.sticky import NonStickyUser, StickyUser

__all__ = ["NonStickyUser", "StickyUser"]  # the users to run
PASSWORD = "test"


class Account(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


@events.init.add_listener
def add_login(environment: Any, **_kwargs: Any) -> None:
    web_ui = environment.web_ui
    if web_ui is None or not web_ui.web_login:
        return
    base = environment.parsed_options.web_base_path
    web_ui.app.config["SECRET_KEY"] = "tests only"
    web_ui.login_manager.user_loader(Account)
    web_ui.auth_args = {"username_password_callback": f"{base}/login_submit"}
    blueprint = Blueprint("test_login", __name__, url_prefix=base)

    @blueprint.route("/login_submit", methods=["POST"])
    def login_submit() -> Response:
        if request.form.get("password") == PASSWORD:
            login_user(Account(request.form.get("username") or "tester"))
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Invalid username or password"
        return redirect(url_for("locust.login"))

    web_ui.app.register_blueprint(blueprint)
