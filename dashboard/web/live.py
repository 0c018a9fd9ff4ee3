"""The live campaign status partial and the lifecycle buttons: send or schedule, unschedule,
cancel, duplicate, retry failed."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from dashboard import queries
from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.errors import AppError
from dashboard.models import Campaign, CampaignStatus
from dashboard.services import campaigns as campaign_service
from dashboard.services import lifecycle
from dashboard.services.delivery import progress
from dashboard.web import timefmt
from dashboard.web.forms import ConfirmForm
from dashboard.web.progress_view import FINAL, bar_label, facts, segments

bp = Blueprint("live", __name__, url_prefix="/campaigns")
LIVE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)
TIMEZONES = timefmt.canonical_zones()


bp.add_app_template_global(queries.outcome, "campaign_outcome")  # the one badge: _status_badge.html


def status_context(campaign: Campaign) -> dict:
    rate = progress.live_rate(campaign)
    failures = queries.recent_failures(campaign) if campaign.failed else []
    final = campaign.status in FINAL
    return {"campaign": campaign, "rate": rate, "facts": facts(campaign, rate),
            "segments": segments(campaign), "bar_label": bar_label(campaign),
            "retried_in": queries.retried_in(campaign) if final and campaign.failed else None,
            "retry_of": queries.retry_of(campaign), "failures": failures,
            "live": campaign.status in LIVE, "confirm": ConfirmForm(),
            "picked_zone": queries.schedule_zone(campaign) if campaign.status == CampaignStatus.SCHEDULED else None}


@bp.get("/<int:campaign_id>/_status")
@roles(*ALL_ROLES)
def status(campaign_id: int):
    """HTMX poll target: one primary-key read; answers 286 (stop polling) once final. The poll
    says which status the page shows (?shown=); when that changed, the page's flashes are
    replaced by one that says what is happening now."""
    campaign = campaign_service.get(campaign_id)
    shown = request.args.get("shown")
    changed = bool(request.headers.get("HX-Request")) and shown is not None and shown != campaign.status
    html = render_template("campaigns/_status.html", **status_context(campaign),
                           state_flash=queries.state_flash(campaign) if changed else None)
    if not request.headers.get("HX-Request"):
        return html
    if campaign.status in LIVE:
        return html, 200, {"HX-Trigger": "campaign-progress"}
    return html, 286, {"HX-Trigger": "campaign-finished"}


def _back(campaign_id: int):
    return redirect(url_for("campaigns.show", campaign_id=campaign_id))


def parse_local(value: str, zone: str) -> tuple[str, str]:
    """A datetime-local value in the chosen zone -> (ISO 8601 with its UTC offset, the zone).
    A typed offset is honoured when it agrees with the zone on that date, else refused."""
    name = timefmt.canonical(zone)
    if name is None:
        raise AppError(f"Unknown time zone “{zone[:64]}”; pick one from the list.")
    tz = timefmt.zone(name)
    text = value.strip().replace(" ", "T", 1)
    text = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        typed = datetime.fromisoformat(text)
    except ValueError:
        raise AppError("Pick a date and time for the schedule.") from None
    local = typed.replace(tzinfo=tz)
    if typed.tzinfo is not None:
        wanted, actual = typed.utcoffset(), local.utcoffset()
        if wanted != actual:
            raise AppError(f"The time typed ends in {timefmt.offset_text(wanted)}, but {name} is "
                           f"{timefmt.offset_text(actual)} on that date. Remove the offset, or pick the zone "
                           f"you mean.")
    elif local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != typed:
        raise AppError(f"{typed:%d %b %Y %H:%M} does not exist in {name} (the clocks skip it); pick another time.")
    return local.isoformat(), name


@bp.post("/<int:campaign_id>/send")
@roles(*WRITERS)
def send(campaign_id: int):
    try:
        when = zone = None
        if request.form.get("intent") == "schedule":
            when, zone = parse_local(request.form.get("scheduled_local", ""), request.form.get("timezone", "UTC"))
        campaign = lifecycle.send(campaign_id, when, current_actor(), zone)
    except AppError as err:
        flash(err.message, "error")
        if request.form.get("intent") == "schedule":  # the form shows what was typed again
            session["schedule_typed"] = {"campaign": campaign_id, "local": request.form.get("scheduled_local", "")[:40],
                                         "zone": request.form.get("timezone", "")[:64]}
    else:
        if campaign.status == CampaignStatus.SCHEDULED:
            flash(f"Scheduled for {timefmt.when_text(campaign.scheduled_at, zone)}.", "success")
        else:
            category, message = queries.state_flash(campaign)  # the same words the live page uses
            flash(message, category)
    return _back(campaign_id)


def _simple(move: str, message: str):
    def view(campaign_id: int):
        try:
            result = getattr(lifecycle, move)(campaign_id, current_actor())
        except AppError as err:
            flash(err.message, "error")
            return _back(campaign_id)
        flash(message.format(c=result), "success")
        return _back(result.id)
    view.__name__ = move
    return view


for _move, _path, _message in (
    ("unschedule", "unschedule", "Unscheduled; the campaign is a draft again."),
    ("cancel", "cancel", "Cancelled. Recipients not yet reached were skipped."),
    ("duplicate", "duplicate", "Created “{c.name}” with {c.total:,} recipients."),
    ("retry_failed", "retry-failed", "Created “{c.name}” with the {c.total:,} failed recipients."),
):
    bp.add_url_rule(f"/<int:campaign_id>/{_path}", _move, roles(*WRITERS)(_simple(_move, _message)),
                    methods=["POST"])
