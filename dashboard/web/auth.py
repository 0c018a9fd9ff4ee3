from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from dashboard.access import ALL_ROLES, public, roles
from dashboard.errors import Unauthorized
from dashboard.extensions import login_manager
from dashboard.services import accounts, sessions
from dashboard.services.login_throttle import DEVICE_COOKIE, DEVICE_MAX_AGE, LoginThrottled, device_token
from dashboard.web.forms import LoginForm

bp = Blueprint("auth", __name__)
SESSION_KEY = "sid"


@login_manager.user_loader
def _load_account(account_id: str):
    """Every way Flask-Login finds a user (the session, a remember cookie) ends here, and
    only a live server-side session answers with an account."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not account_id.isdigit():
        return None
    account = sessions.resume(token, int(account_id))
    if account is None:
        session.pop(SESSION_KEY, None)
        flash("Your session has ended. Please sign in again.", "info")
    return account


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths, so ?next= can't bounce users to another site."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("home.index")


def _signed_in(account):
    session.clear()
    login_user(account)
    session[SESSION_KEY] = sessions.start(account)
    flash(f"Welcome, {account.email}.", "success")
    response = redirect(_safe_next(request.args.get("next")))
    response.set_cookie(DEVICE_COOKIE, device_token(account.email), max_age=DEVICE_MAX_AGE, httponly=True,
                        secure=current_app.config["SESSION_COOKIE_SECURE"], samesite="Lax")
    return response


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        try:
            account = accounts.authenticate(form.email.data, form.password.data, request.remote_addr,
                                            request.cookies.get(DEVICE_COOKIE))
        except LoginThrottled as err:
            form.form_errors.append(err.message)
            status, headers = err.status, {"Retry-After": str(err.retry_after)}
        except Unauthorized as err:
            form.form_errors.append(err.message)
            status = err.status
        else:
            return _signed_in(account)
    elif form.is_submitted():
        status = 400
    return render_template("auth/login.html", form=form), status, headers


@bp.post("/logout")
@roles(*ALL_ROLES)
def logout():
    token = session.pop(SESSION_KEY, None)
    if token:
        sessions.end(token)
    logout_user()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))
