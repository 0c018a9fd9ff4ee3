"""The draft's Audience panel (campaigns blueprint): hand-picked/CSV recipients, a saved segment
(with its live count) or a list (with its size); Freeze now; change or clear. Errors of an HTMX
request are shown in the panel's error region (the app's htmx error handling), else flashed."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from dashboard.access import WRITERS, current_actor, roles
from dashboard.errors import AppError, ValidationError
from dashboard.extensions import db
from dashboard.models import Segment, UserList
from dashboard.services import audiences
from dashboard.services import campaigns as service
from dashboard.web.campaigns import bp

MAX_OPTIONS = 500


def _segment_count(segment: Segment) -> int | None:
    """The segment's live count (one COUNT); None when it cannot be counted now."""
    from dashboard.services import segments

    try:
        return segments.count(segment.definition)
    except AppError:
        return None


def panel_context(campaign) -> dict:
    """What the panel shows: the choices (writers, drafts) and the chosen source's live size."""
    live = None
    if campaign.audience_kind == audiences.SEGMENT and campaign.audience_frozen_at is None:
        segment = db.session.get(Segment, campaign.audience_id)
        live = _segment_count(segment) if segment is not None else None
    elif campaign.audience_kind == audiences.LIST and campaign.audience_frozen_at is None:
        user_list = db.session.get(UserList, campaign.audience_id)
        live = user_list.size if user_list is not None else None
    context = {"audience_live": live, "audience_segments": [], "audience_lists": []}
    if campaign.is_draft:
        context["audience_segments"] = db.session.execute(
            select(Segment.id, Segment.name).order_by(Segment.name).limit(MAX_OPTIONS)).all()
        context["audience_lists"] = db.session.execute(
            select(UserList.id, UserList.name, UserList.size).order_by(UserList.name).limit(MAX_OPTIONS)).all()
    return context


@bp.app_template_global("audience_panel")
def audience_panel(campaign) -> dict:
    return panel_context(campaign)


def _back(campaign_id: int):
    target = url_for("campaigns.show", campaign_id=campaign_id) + "#audience"
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": target, "HX-Refresh": "true"}
    return redirect(target)


def _choice(raw: str | None) -> tuple[str, int | None]:
    """The panel's one select: "manual", "segment:ID" or "list:ID"."""
    kind, _, number = (raw or "").strip().partition(":")
    if kind == "manual" and not number:
        return kind, None
    if kind in audiences.KINDS and number.isdigit() and len(number) < 10:
        return kind, int(number)
    raise ValidationError("Choose where the recipients come from: hand-picked/CSV, a saved segment or a list.",
                          [{"field": "audience", "message": "choose one"}])


@bp.post("/<int:campaign_id>/audience")
@roles(*WRITERS)
def audience_set(campaign_id: int):
    """Choose where the draft's recipients come from."""
    try:
        kind, picked = _choice(request.form.get("audience"))
        if kind == "manual":
            audiences.clear_audience(campaign_id, current_actor())
            message = "Recipients are hand-picked or uploaded again."
        else:
            campaign = audiences.set_audience(campaign_id, kind, picked, current_actor())
            message = (f"Audience: the {kind} “{campaign.audience_name}”. Its users become the recipients when "
                       "you press Send or Schedule, or Freeze now.")
    except AppError as err:
        if request.headers.get("HX-Request"):
            raise
        flash(err.message, "error")
        return redirect(url_for("campaigns.show", campaign_id=campaign_id) + "#audience")
    flash(message, "success")
    return _back(campaign_id)


@bp.post("/<int:campaign_id>/audience/freeze")
@roles(*WRITERS)
def audience_freeze(campaign_id: int):
    """Materialise the audience now (again: a fresh snapshot)."""
    try:
        campaign = audiences.freeze(campaign_id, current_actor())
    except AppError as err:
        if request.headers.get("HX-Request"):
            raise
        flash(err.message, "error")
        return redirect(url_for("campaigns.show", campaign_id=campaign_id) + "#audience")
    flash(f"Snapshot taken: {campaign.audience_size:,} recipients from the {campaign.audience_kind} "
          f"“{campaign.audience_name}”.", "success")
    return _back(campaign_id)


@bp.get("/<int:campaign_id>/_audience/count")
@roles(*WRITERS)
def audience_count(campaign_id: int):
    """HTMX: the live size of the segment or list picked in the panel (before it is saved)."""
    service.get(campaign_id)
    try:
        kind, picked = _choice(request.args.get("audience"))
    except ValidationError:
        kind, picked = "manual", None
    size = None
    if kind == audiences.SEGMENT and (segment := db.session.get(Segment, picked)) is not None:
        size = _segment_count(segment)
    elif kind == audiences.LIST and (user_list := db.session.get(UserList, picked)) is not None:
        size = user_list.size
    return render_template("campaigns/_audience_count.html", kind=kind, size=size)
