from __future__ import annotations

from flask import Response, jsonify, request, stream_with_context

from dashboard import queries
from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.api import query
from dashboard.api.common import bp, idempotent, json_body, whole_numbers
from dashboard.errors import AppError, LifecycleError, ValidationError
from dashboard.exports import recipients_csv_stream
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignStatus, Recipient, RecipientStatus, utcnow
from dashboard.services import (
    audiences,
    channel_settings,
    control,
    lifecycle,
    recipient_time,
    recipients,
    test_sends,
    uploads,
)
from dashboard.services import campaigns as service
from dashboard.services.delivery import progress

S = CampaignStatus
FINISHED = (S.SENT, S.FAILED, S.CANCELLED)


def _iso(value):
    return value.isoformat() if value else None


def _wave_report_due(c: Campaign) -> bool:
    """The first wave's report costs a scan of the campaign's recipients, so it is computed only
    when someone is deciding (paused after or during the wave) or looking back (finished); while
    sending, `counts` tells the story."""
    return c.status == S.PAUSED or c.status in FINISHED


def _canary(c: Campaign, detail: bool) -> dict | None:
    if c.canary_state is None:
        return None
    return {"size": c.canary_size, "percent": c.canary_percent, "holdMinutes": c.canary_hold_minutes,
            "state": c.canary_state, "seed": c.canary_seed,
            "wave": control.canary_report(c) if detail and _wave_report_due(c) else None}


def _approval(c: Campaign) -> dict | None:
    if c.approval_requested_by is None:
        return None
    return {"requestedBy": c.approval_requested_by, "requestedAt": _iso(c.approval_requested_at),
            "approvedBy": c.approved_by, "approvedAt": _iso(c.approved_at), "awaiting": c.awaiting_approval}


def _spread_rate(c: Campaign) -> float | None:
    """Only a spread campaign looks up its channel (one row per channel per request: the session's
    identity map answers the rest of a list)."""
    if not c.spread_minutes:
        return None
    return control.spread_rate(c, channel_settings.get(c.channel).rate_limit)


def _waves(c: Campaign, detail: bool) -> tuple[list[dict] | None, str | None]:
    """A local-time send's (or quiet hours') waves and the next one's instant: two small queries,
    so only when reading one campaign that has waves (lists give null)."""
    if not detail:
        return None, None
    if not c.wave_count:
        return [], None
    view = recipient_time.waves_view(c, utcnow())
    return [{**w, "dueAt": _iso(w["dueAt"])} for w in view], _iso(recipient_time.next_wave(view))


def campaign_json(c: Campaign, detail: bool = True) -> dict:
    """The campaign; `detail=False` (lists) leaves out what needs more than the row (the canary
    wave, the timed waves)."""
    rate, eta = progress.rate_and_eta(c)
    waves, next_wave_at = _waves(c, detail)
    halt = {"percent": c.halt_percent, "window": c.halt_window} if c.halt_percent is not None else None
    return {
        "id": c.id, "name": c.name, "status": c.status, "templateId": c.template.template_id,
        "templateVersion": c.template_version, "channel": c.channel, "deliveryMode": c.delivery_mode,
        "variables": c.variables, "failureThreshold": c.failure_threshold,
        "scheduledAt": _iso(c.scheduled_at), "startedAt": _iso(c.started_at), "completedAt": _iso(c.completed_at),
        "createdAt": _iso(c.created_at), "updatedAt": _iso(c.updated_at),
        "counts": {"total": c.total, "pending": c.pending, "sent": c.sent, "failed": c.failed, "skipped": c.skipped},
        "rate": rate, "etaSeconds": eta, "failureReason": c.failure_reason, "retryOfId": c.retry_of_id,
        "pausedReason": c.paused_reason, "pausedAt": _iso(c.paused_at), "pausedBy": c.paused_by,
        "canary": _canary(c, detail), "haltRule": halt, "spreadMinutes": c.spread_minutes,
        "spreadRate": _spread_rate(c), "approval": _approval(c),
        "sendAt": c.send_at, "ignoreQuietHours": not c.quiet_hours, "ignoreFrequencyCap": not c.frequency_cap,
        "trackClicks": c.track_clicks,
        "waves": waves, "nextWaveAt": next_wave_at, "audience": audiences.describe(c),
    }


def recipient_json(r: Recipient) -> dict:
    return {"id": r.id, "userId": r.user_id, "email": r.email, "variables": r.variables, "status": r.status,
            "attempts": r.attempts, "lastError": r.last_error, "createdAt": _iso(r.created_at),
            "updatedAt": _iso(r.updated_at), "sentAt": _iso(r.sent_at)}


@bp.get("/campaigns")
@roles(*ALL_ROLES)
def campaign_list():
    page = queries.campaigns(query.choice("status", CampaignStatus), request.args.get("q"),
                             limit=query.limit(), cursor=request.args.get("cursor"))
    return jsonify({"items": [campaign_json(c, detail=False) for c in page.items], "nextCursor": page.next_cursor})


@bp.post("/campaigns")
@roles(*WRITERS)
@idempotent
def campaign_create():
    body = json_body()
    audience = audiences.parse(body.get("audience")) if isinstance(body, dict) else None
    if audience is not None:
        audiences.source(*audience)  # an unknown segment/list is a 400 before anything is created
    campaign = service.create(body, current_actor())
    if audience is not None:
        campaign = audiences.set_audience(campaign.id, *audience, current_actor())
    return jsonify(campaign_json(campaign)), 201


@bp.get("/campaigns/<int:campaign_id>")
@roles(*ALL_ROLES)
def campaign_read(campaign_id: int):
    return jsonify(campaign_json(service.get(campaign_id)))


@bp.patch("/campaigns/<int:campaign_id>")
@roles(*WRITERS)
def campaign_edit(campaign_id: int):
    """Edit a draft; `audience` ({"segmentId": N} | {"listId": N} | null) is set in the same
    transaction as the other fields (a refused edit changes neither)."""
    body = json_body()
    if not isinstance(body, dict) or "audience" not in body:
        return jsonify(campaign_json(service.edit(campaign_id, body, current_actor())))
    body = dict(body)
    audience = audiences.parse(body.pop("audience"))
    if audience is None:
        campaign = audiences.clear_audience(campaign_id, current_actor(), commit=not body)
    else:
        campaign = audiences.set_audience(campaign_id, *audience, current_actor(), commit=not body)
    if body:
        try:
            campaign = service.edit(campaign_id, body, current_actor())
        except AppError:
            db.session.rollback()  # the audience change goes too
            raise
    return jsonify(campaign_json(campaign))


@bp.post("/campaigns/<int:campaign_id>/audience/freeze")
@roles(*WRITERS)
def campaign_audience_freeze(campaign_id: int):
    """Materialise the draft's audience now (again: the snapshot is refreshed)."""
    return jsonify(campaign_json(audiences.freeze(campaign_id, current_actor())))


@bp.delete("/campaigns/<int:campaign_id>")
@roles(*WRITERS)
def campaign_delete(campaign_id: int):
    service.delete_draft(campaign_id, current_actor())
    return "", 204


@bp.post("/campaigns/<int:campaign_id>/recipients")
@roles(*WRITERS)
def recipients_add(campaign_id: int):
    body = json_body()
    return jsonify(recipients.add_manual(campaign_id, body.get("userIds"), body.get("userVariables"),
                                         current_actor()))


@bp.get("/campaigns/<int:campaign_id>/recipients")
@roles(*ALL_ROLES)
def recipients_list(campaign_id: int):
    service.get(campaign_id)
    page = queries.recipients(campaign_id, query.choice("status", RecipientStatus), request.args.get("userId"),
                              limit=query.limit(), cursor=request.args.get("cursor"))
    return jsonify({"items": [recipient_json(r) for r in page.items], "nextCursor": page.next_cursor})


@bp.delete("/campaigns/<int:campaign_id>/recipients")
@roles(*WRITERS)
def recipients_clear(campaign_id: int):
    removed = recipients.clear(campaign_id, current_actor())
    return jsonify({"removed": removed, "total": 0})


@bp.get("/campaigns/<int:campaign_id>/recipients/export")
@roles(*ALL_ROLES)
def recipients_export(campaign_id: int):
    campaign = service.get(campaign_id)
    return Response(stream_with_context(recipients_csv_stream(campaign)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="campaign-{campaign.id}-recipients.csv"'})


@bp.post("/campaigns/<int:campaign_id>/recipients/upload")
@roles(*WRITERS)
def recipients_upload(campaign_id: int):
    file = request.files.get("file")
    if file is None:
        raise ValidationError("Send the CSV as multipart/form-data in a field named 'file'.",
                              [{"field": "file", "message": "missing"}])
    if query.flag("dryRun"):
        preview = uploads.validate_upload(campaign_id, file.stream)
        preview.pop("token")
        return jsonify(preview)
    return jsonify(uploads.import_now(campaign_id, file.stream, current_actor(), query.flag("skipInvalid")))


@bp.post("/campaigns/<int:campaign_id>/send")
@roles(*WRITERS)
@idempotent
def campaign_send(campaign_id: int):
    """Send now or schedule; a draft may also get delivery-control options (canary, haltRule,
    spreadMinutes) and recipient-time options (sendAt, ignoreQuietHours, ignoreFrequencyCap). A
    scheduled campaign keeps the options it was scheduled with."""
    body = json_body(optional=True)
    options = control.parse_options(whole_numbers(body, "canary.size", "canary.holdMinutes", "haltRule.window",
                                                  "spreadMinutes"))
    status = service.get(campaign_id).status
    if options != control.SendOptions() and status != S.DRAFT:
        raise LifecycleError(f"Campaign is {status}; delivery options are set when a draft is sent "
                             "(unschedule it to change them).", [{"field": "status", "message": status}])
    campaign = lifecycle.send(campaign_id, body.get("scheduledAt"), current_actor(), options=options)
    return jsonify(campaign_json(campaign)), 202


@bp.post("/campaigns/<int:campaign_id>/test")
@roles(*WRITERS)
def campaign_test(campaign_id: int):
    """Send a draft to up to 10 userIds/emails now, marked as a test (never counted in the campaign)."""
    test = test_sends.send(campaign_id, json_body().get("targets"), current_actor())
    return jsonify({"campaignId": campaign_id, "testCampaignId": test.id, "status": test.status,
                    "targets": test.total}), 202


@bp.post("/campaigns/<int:campaign_id>/unschedule")
@roles(*WRITERS)
def campaign_unschedule(campaign_id: int):
    return jsonify(campaign_json(lifecycle.unschedule(campaign_id, current_actor())))


@bp.post("/campaigns/<int:campaign_id>/cancel")
@roles(*WRITERS)
def campaign_cancel(campaign_id: int):
    return jsonify(campaign_json(lifecycle.cancel(campaign_id, current_actor())))


@bp.post("/campaigns/<int:campaign_id>/pause")
@roles(*WRITERS)
def campaign_pause(campaign_id: int):
    return jsonify(campaign_json(control.pause(campaign_id, current_actor())))


@bp.post("/campaigns/<int:campaign_id>/resume")
@roles(*WRITERS)
def campaign_resume(campaign_id: int):
    """Resume a paused send; after a canary hold this is Continue (the rest of the audience)."""
    return jsonify(campaign_json(control.resume(campaign_id, current_actor())))


@bp.post("/campaigns/<int:campaign_id>/approve-send")
@roles(*WRITERS)
def campaign_approve_send(campaign_id: int):
    """Four-eyes: a second account approves a send waiting for it (403 four_eyes for the first)."""
    return jsonify(campaign_json(control.approve_send(campaign_id, current_actor())))


@bp.post("/campaigns/<int:campaign_id>/duplicate")
@roles(*WRITERS)
@idempotent
def campaign_duplicate(campaign_id: int):
    return jsonify(campaign_json(lifecycle.duplicate(campaign_id, current_actor()))), 201


@bp.post("/campaigns/<int:campaign_id>/retry-failed")
@roles(*WRITERS)
@idempotent
def campaign_retry_failed(campaign_id: int):
    return jsonify(campaign_json(lifecycle.retry_failed(campaign_id, current_actor()))), 201
