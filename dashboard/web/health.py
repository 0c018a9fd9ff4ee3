from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from dashboard.access import public
from dashboard.extensions import db, get_redis

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz():
    """Liveness for load balancers: each dependency 'ok' or the reason it is down."""
    status = {}
    try:
        db.session.execute(text("SELECT 1"))
        status["database"] = "ok"
    except Exception as exc:  # any failure means down; report its kind, not secrets
        db.session.rollback()
        status["database"] = f"down: {type(exc).__name__}"
    try:
        get_redis().ping()
        status["redis"] = "ok"
    except Exception as exc:
        status["redis"] = f"down: {type(exc).__name__}"
    healthy = all(v == "ok" for v in status.values())
    return jsonify(status), 200 if healthy else 503
