"""Who may call what: every view declares its roles (or that it is public), and one
before_request hook enforces it for the dashboard and the API alike (fail closed)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app, g, redirect, request, url_for
from flask_login import current_user

from dashboard.errors import Forbidden
from dashboard.models import Role
from dashboard.services.accounts import authenticate_api_key
from dashboard.services.actor import Actor

ALL_ROLES = (Role.ADMIN, Role.MARKETER, Role.SUPPORT)
WRITERS = (Role.ADMIN, Role.MARKETER)
ADMINS = (Role.ADMIN,)


def roles(*allowed: Role) -> Callable:
    def mark(view):
        view.allowed_roles = frozenset(allowed)
        return view
    return mark


def public(view):
    view.is_public = True
    return view


def current_actor() -> Actor:
    key = g.get("api_key")
    if key is not None:
        return Actor(label=f"API key {key.prefix} ({key.account.email})",
                     account_id=key.account_id, api_key_id=key.id)
    if current_user.is_authenticated:
        return Actor(label=current_user.email, account_id=current_user.id)
    return Actor.system("anonymous")


def current_role() -> str | None:
    key = g.get("api_key")
    if key is not None:
        return key.account.role
    if current_user.is_authenticated:
        return current_user.role
    return None


def can(*allowed: Role) -> bool:
    """For templates: show a link or button only to roles that may use it."""
    return current_role() in allowed


def _enforce():
    if request.endpoint is None or request.endpoint == "static":
        return None
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "is_public", False):
        return None
    allowed = getattr(view, "allowed_roles", None)
    is_api = request.blueprint == "api"
    if is_api:
        g.api_key = authenticate_api_key(request.headers.get("Authorization", ""))
    elif not current_user.is_authenticated:
        target = request.full_path.rstrip("?") if request.method == "GET" and request.path != "/" else None
        login = url_for("auth.login", next=target)
        if request.headers.get("HX-Request"):
            return "", 401, {"HX-Redirect": login}
        return redirect(login)
    if allowed is None:
        raise Forbidden("This endpoint declares no access rule, so it is closed.")
    if current_role() not in allowed:
        if is_api:
            raise Forbidden(f"Your role ({current_role()}) may not do this.")
        raise Forbidden("Your role doesn't give you access to this page.")
    return None


def init_access(app: Flask) -> None:
    app.before_request(_enforce)
    app.jinja_env.globals.update(can=can, Role=Role, current_role=current_role)


__all__ = ["ADMINS", "ALL_ROLES", "WRITERS", "Actor", "can", "current_actor", "init_access", "public", "roles"]
