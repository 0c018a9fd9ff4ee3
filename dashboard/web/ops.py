"""Operations: GET /metrics (Prometheus) and the admin Queues & workers page.

Why a page of our own rather than mounting rq-dashboard: rq-dashboard is a second Flask app
with its own templates, scripts and routes, outside Herald's sign-in, roles, CSRF protection,
audit log and Content-Security-Policy (it would need its own auth in front); it shows raw job
arguments rather than campaigns, and offers more actions (empty a queue, requeue all)
than an operator of Herald should have on one click. RQ's own API (Queue, the job registries,
Worker.all) gives everything this page needs in ~200 lines (dashboard/queue_state.py)."""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError

from dashboard import metrics, queue_state
from dashboard.access import ADMINS, current_actor, public, roles
from dashboard.extensions import db
from dashboard.models import Role
from dashboard.services import audit

bp = Blueprint("ops", __name__)
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@bp.get("/metrics")
@public  # checked here: a bearer token (Prometheus) or an admin's session (a person looking)
def metrics_page():
    token = current_app.config["HERALD_METRICS_TOKEN"]
    if metrics.token_matches(request.headers.get("Authorization", ""), token):
        return metrics.exposition()
    if current_user.is_authenticated:
        if current_user.role == Role.ADMIN:
            return metrics.exposition()
        return Response("Metrics are for admins and for the HERALD_METRICS_TOKEN bearer token.\n", 403,
                        content_type="text/plain; charset=utf-8")
    return Response("Send Authorization: Bearer <HERALD_METRICS_TOKEN>, or sign in as an admin.\n", 401,
                    {"WWW-Authenticate": 'Bearer realm="herald-metrics"'}, content_type="text/plain; charset=utf-8")


@bp.get("/admin/queues")
@roles(*ADMINS)
def queues():
    try:
        snapshot = queue_state.snapshot()
    except RedisError as err:
        current_app.logger.warning("queues page: Redis unavailable: %s", err)
        return render_template("admin/queues.html", snap=None), 503
    return render_template("admin/queues.html", snap=snapshot, stale_after=queue_state.STALE_HEARTBEAT_SECONDS)


def _job_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        abort(404)
    return job_id


@bp.post("/admin/queues/failed/<job_id>/requeue")
@roles(*ADMINS)
def requeue_job(job_id: str):
    job = queue_state.requeue_failed(_job_id(job_id))
    if job is None:
        flash(f"Job {job_id} is no longer in the failed list (requeued or deleted meanwhile).", "warning")
    else:
        audit.record(current_actor(), "job.requeued", "job", job_id[:64], details={"queue": job.origin})
        db.session.commit()
        flash(f"Job {job_id} is back at the end of the {job.origin} queue.", "success")
    return redirect(url_for("ops.queues"))


@bp.post("/admin/queues/failed/<job_id>/delete")
@roles(*ADMINS)
def delete_job(job_id: str):
    if queue_state.delete_failed(_job_id(job_id)):
        audit.record(current_actor(), "job.deleted", "job", job_id[:64])
        db.session.commit()
        flash(f"Job {job_id} deleted.", "success")
    else:
        flash(f"Job {job_id} is no longer in the failed list (requeued or deleted meanwhile).", "warning")
    return redirect(url_for("ops.queues"))
