"""Audiences → Segments: saved filters over the user directory, with a builder and a live count."""

from __future__ import annotations

from flask import Blueprint, render_template

from dashboard.access import ALL_ROLES, roles
from dashboard.services import segments as service

bp = Blueprint("segments", __name__, url_prefix="/audiences/segments")


@bp.get("")
@roles(*ALL_ROLES)
def index():
    return render_template("audiences/segments.html", segments=service.list_all())
