"""The live campaign status partial and the lifecycle buttons: send or schedule (with the
delivery options: canary wave, automatic pause, spread; or at a time in each recipient's zone,
sent in waves), pause, resume / continue, approve a send (four-eyes), unschedule, cancel,
duplicate, retry failed. A campaign with waves shows them (waves_context)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from dashboard import queries
from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.errors import AppError, ValidationError
from dashboard.models import Campaign, CampaignStatus, DeliveryMode
from dashboard.services import campaigns as campaign_service
from dashboard.services import channel_settings, control, lifecycle, recipient_time, workspace
from dashboard.services.delivery import progress
from dashboard.web import timefmt
from dashboard.web.campaign_forms import SendOptionsForm, number, sentence
from dashboard.web.forms import ConfirmForm
from dashboard.web.progress_view import (
    FINAL,
    bar_label,
    canary_size_text,
    cap_text,
    duration,
    facts,
    pause_view,
    segments,
)

bp = Blueprint("live", __name__, url_prefix="/campaigns")
S = CampaignStatus
LIVE = (S.SCHEDULED, S.SENDING, S.PAUSED)  # the status card polls itself (a paused one can be resumed elsewhere)
TIMEZONES = timefmt.canonical_zones()


bp.add_app_template_global(queries.outcome, "campaign_outcome")  # the one badge: _status_badge.html


@bp.app_template_filter("clock")
def clock(value) -> str:
    """A wall-clock time (datetime.time) as the 24-hour "HH:MM" the settings use."""
    return value.strftime("%H:%M") if value is not None else ""


@bp.app_template_filter("day_text")
def day_text(value: str) -> str:
    """"2026-12-02" -> "2 Dec 2026" (what a date input holds, as the page says it)."""
    try:
        day = date.fromisoformat((value or "").strip())
    except ValueError:
        return "the date chosen"
    return f"{day.day} {day:%b %Y}"


def spread_cap(campaign: Campaign) -> float | None:
    """The campaign's own rate cap when it is spread over a window (None otherwise)."""
    if not campaign.spread_minutes or campaign.delivery_mode != DeliveryMode.BATCH:
        return None
    return control.spread_rate(campaign, channel_settings.get(campaign.channel).rate_limit)


def state_flash(c: Campaign) -> tuple[str, str]:
    """queries.state_flash, plus what delivery control adds: a canary's first wave, a pause and
    why, a send waiting for a second person's approval."""
    if c.status == S.SENDING and c.canary_state == "sending":
        wave = min(control.canary_count(c.total, c.canary_size, c.canary_percent), c.total)
        then = (f"it waits {c.canary_hold_minutes:,} min (or until you continue)" if c.canary_hold_minutes
                else "it waits until you continue")
        return "success", f"Sending a first wave to {wave:,} of {c.total:,} recipients; then {then}."
    pause = pause_view(c)
    if pause is not None:
        if pause.kind == "canary":
            return "info", "The first wave is done: check its results, then continue or cancel."
        if pause.kind == "halt":
            return "warning", f"Paused automatically: {pause.reason}"
        return "info", f"Paused by {pause.by}. Nothing more is sent until it is resumed."
    if c.awaiting_approval:
        return "info", f"Waiting for a second person's approval before sending to {c.total:,} recipients."
    return queries.state_flash(c)


def status_context(campaign: Campaign) -> dict:
    rate = progress.live_rate(campaign)
    failures = queries.recent_failures(campaign) if campaign.failed else []
    final = campaign.status in FINAL
    cap = spread_cap(campaign) if campaign.status in (S.SENDING, S.PAUSED) else None
    paused = campaign.status == S.PAUSED
    canary = control.canary_report(campaign) if paused and campaign.canary_state in ("sending", "held") else None
    approver = current_actor().account_id
    picked = queries.schedule_zone(campaign) if campaign.status == S.SCHEDULED else None
    sends = f"at {timefmt.when_text(campaign.scheduled_at, picked)}" if campaign.scheduled_at else "now"
    return {"campaign": campaign, "rate": rate, "facts": facts(campaign, rate, cap=cap),
            "segments": segments(campaign), "bar_label": bar_label(campaign),
            "retried_in": queries.retried_in(campaign) if final and campaign.failed else None,
            "retry_of": queries.retry_of(campaign), "failures": failures,
            "live": campaign.status in LIVE, "confirm": ConfirmForm(),
            "pause": pause_view(campaign), "canary": canary, "canary_wave": canary_size_text(campaign),
            "can_approve": campaign.awaiting_approval and approver != campaign.approval_requested_by_id,
            "approve_confirm": f"Approve sending “{campaign.name}” to {campaign.total:,} recipients {sends}?",
            "four_eyes_limit": workspace.four_eyes().threshold if campaign.awaiting_approval else None,
            "picked_zone": picked, **waves_context(campaign)}


SHOWN_ZONES = 3


def send_at_summary(send_at: dict | None) -> str | None:
    """"09:00 in each recipient's time zone on 2 Dec 2026, fallback Europe/Paris"."""
    if not send_at:
        return None
    try:
        day = date.fromisoformat(send_at["date"])
    except (KeyError, TypeError, ValueError):
        return None
    return (f"{send_at.get('localTime')} in each recipient's time zone on {day.day} {day:%b %Y}, "
            f"fallback {send_at.get('fallbackZone')}")


def passed_text(send_at: dict | None) -> str:
    if not send_at:
        return ""
    return ("where that time had already passed: the next day" if send_at.get("passed", "next_day") == "next_day"
            else "where that time had already passed: sent at once")


def waves_context(campaign: Campaign) -> dict:
    """The Waves panel (only for a campaign with timed waves: two small queries, none otherwise)."""
    if not campaign.wave_count or campaign.status == S.DRAFT:
        return {"waves": None}
    now = datetime.now(UTC)
    view = recipient_time.waves_view(campaign, now)
    rows = []
    for w in view:
        zones = w["zones"]
        local = {"local": w["localTime"], "quiet": f"{w['localTime']} (quiet hours end)",
                 "now": "now", "passed": "at once (the time had passed)"}.get(w["reason"], w["localTime"] or "")
        rows.append(w | {"local": local, "shownZones": zones[:SHOWN_ZONES],
                         "moreZones": max(len(zones) - SHOWN_ZONES, 0), "allZones": ", ".join(zones)})
    upcoming = recipient_time.next_wave(view)
    countdown = duration(max((upcoming - now).total_seconds(), 0)) if upcoming is not None else None
    if countdown and upcoming - now < timedelta(seconds=60):
        countdown = "under a minute"
    return {"waves": rows, "next_wave_at": upcoming, "next_wave_in": countdown,
            "send_at_text": send_at_summary(campaign.send_at), "send_at_passed": passed_text(campaign.send_at)}


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
                           state_flash=state_flash(campaign) if changed else None)
    if not request.headers.get("HX-Request"):
        return html
    if campaign.status == S.PAUSED:
        return html  # nothing moves while paused: the recipients table need not refresh
    if campaign.status in LIVE:
        return html, 200, {"HX-Trigger": "campaign-progress"}
    return html, 286, {"HX-Trigger": "campaign-finished"}


def _back(campaign_id: int, anchor: str = ""):
    url = url_for("campaigns.show", campaign_id=campaign_id) + anchor
    if request.headers.get("HX-Request"):  # Schedule posts with HTMX (it asks no confirmation)
        # To the same page with an anchor, the browser only scrolls (a fragment navigation): HX-Refresh
        # makes htmx reload it, so a refused schedule shows its errors.
        return "", 204, {"HX-Redirect": url} | ({"HX-Refresh": "true"} if anchor else {})
    return redirect(url)


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
    """Send now or schedule; from Review & send also with the delivery options, judged by
    control.parse_options as the API's are. A refusal changes nothing: the page shows each
    problem next to its field with everything typed kept (shown once, as the flash is)."""
    form = SendOptionsForm() if request.form.get("advanced") else None
    scheduling = request.form.get("intent") == "schedule"
    local = request.form.get("intent") == "local"  # at a time in each recipient's zone (waves)
    problems: list[AppError] = []
    options = when = zone = campaign = None
    if form is not None:
        try:
            options = form.options(local=local)
        except ValidationError as err:
            problems.append(err)
    elif local:
        problems.append(AppError("Choose the local time in Review & send."))
    if scheduling:
        try:
            when, zone = parse_local(request.form.get("scheduled_local", ""), request.form.get("timezone", "UTC"))
        except AppError as err:
            problems.append(err)
    if not problems:
        try:
            campaign = lifecycle.send(campaign_id, when, current_actor(), zone, options=options)
        except AppError as err:
            problems.append(err)
    if problems:
        return _refused(campaign_id, form, problems, scheduling)
    if campaign.awaiting_approval:
        at = f" at {timefmt.when_text(campaign.scheduled_at, zone)}" if campaign.scheduled_at else ""
        flash(f"Sending to {campaign.total:,} recipients needs a second person's approval; it starts{at or ' now'} "
              f"once someone else approves it.", "info")
    elif local and campaign.status == S.SCHEDULED:
        waves = f"{campaign.wave_count:,} wave{'s' if campaign.wave_count != 1 else ''}"
        flash(f"Scheduled at {send_at_summary(campaign.send_at)}: {waves}, the first "
              f"{timefmt.when_text(campaign.scheduled_at)}.", "success")
    elif campaign.status == S.SCHEDULED:
        flash(f"Scheduled for {timefmt.when_text(campaign.scheduled_at, zone)}.", "success")
    else:
        category, message = state_flash(campaign)  # the same words the live page uses
        flash(message, category)
    return _back(campaign_id)


def _refused(campaign_id: int, form: SendOptionsForm | None, problems: list[AppError], scheduling: bool):
    on_fields = False
    for err in problems:
        rest = form.show_errors(err) if form is not None and isinstance(err, ValidationError) else None
        if rest is None or (rest and len(rest) == len(err.details)) or not err.details:
            flash(err.message, "error")
        else:
            on_fields = True
            for text in rest:
                flash(text, "error")
    if on_fields:
        flash("Nothing was sent: check the delivery options marked below.", "error")
    if scheduling or form is not None:  # the form shows what was typed again
        typed = {"campaign": campaign_id}
        if scheduling:
            typed |= {"local": request.form.get("scheduled_local", "")[:40],
                      "zone": request.form.get("timezone", "")[:64]}
        if form is not None:
            typed["options"] = form.typed()
            typed["errors"] = {f.name: list(f.errors) for f in form if f.errors}
        session["schedule_typed"] = typed
    return _back(campaign_id, "#review" if on_fields else "")


def send_form(typed: dict | None) -> SendOptionsForm:
    """Review & send's options: the defaults, or what a refused send had typed, with its errors."""
    from werkzeug.datastructures import MultiDict

    if not typed or "options" not in typed:
        tomorrow = datetime.now(timefmt.zone(timefmt.viewer_zone_name())).date() + timedelta(days=1)
        form = SendOptionsForm(formdata=None, local_date=tomorrow.isoformat(),
                               fallback_zone=timefmt.viewer_zone_name())
    else:
        form = SendOptionsForm(formdata=MultiDict(typed["options"]))
        for name, errors in (typed.get("errors") or {}).items():
            if name in form:
                form[name].errors = list(errors)
    # What the workspace applies (the hints beside "Ignore quiet hours" and "Ignore frequency caps").
    form.quiet = workspace.quiet_hours()
    form.caps = workspace.frequency_caps()
    return form


def spread_hint(campaign: Campaign, raw: str | None) -> str:
    """What "Spread the send over N minutes" means for this campaign: its rate cap and duration."""
    rate = channel_settings.get(campaign.channel).rate_limit
    if campaign.delivery_mode != DeliveryMode.BATCH:
        return "Spreading needs batch delivery; a realtime campaign is never throttled."
    minutes = number(raw)
    if minutes is None:
        return f"Empty: as fast as the channel allows (up to {cap_text(rate)})."
    try:
        control.parse_options({"spreadMinutes": minutes})
    except ValidationError as err:
        return sentence(err.details[0]["message"] if err.details else err.message)
    cap = control.spread_rate(SimpleNamespace(spread_minutes=minutes, total=campaign.total), rate)
    text = f"At most {cap_text(cap)}: {campaign.total:,} recipients over about {duration(campaign.total / cap)}."
    if cap >= rate:
        text += " That is the channel's own limit, so spreading changes nothing."
    return text


@bp.get("/<int:campaign_id>/_spread")
@roles(*WRITERS)
def spread(campaign_id: int):
    """HTMX: the rate cap a spread gives, as the marketer types the minutes."""
    campaign = campaign_service.get(campaign_id)
    return render_template("campaigns/_spread_hint.html",
                           spread_text=spread_hint(campaign, request.args.get("spread_minutes")))


@bp.post("/<int:campaign_id>/pause")
@roles(*WRITERS)
def pause(campaign_id: int):
    try:
        control.pause(campaign_id, current_actor())
    except AppError as err:
        flash(err.message, "error")
    else:
        flash("Paused: nothing more is sent until you resume. Recipients already reached keep their message.",
              "info")
    return _back(campaign_id)


@bp.post("/<int:campaign_id>/resume")
@roles(*WRITERS)
def resume(campaign_id: int):
    """Resume a pause or an automatic halt; after a canary's hold this is Continue (the rest)."""
    try:
        continuing = campaign_service.get(campaign_id).canary_state == "held"
        campaign = control.resume(campaign_id, current_actor())
    except AppError as err:
        flash(err.message, "error")
    else:
        if campaign.status == S.SENDING:
            verb = "Continuing" if continuing else "Resumed"
            flash(f"{verb}: sending to the remaining {campaign.pending:,} recipients.", "success")
        else:
            category, message = state_flash(campaign)
            flash(message, category)
    return _back(campaign_id)


@bp.post("/<int:campaign_id>/approve-send")
@roles(*WRITERS)
def approve_send(campaign_id: int):
    """Four-eyes: a second account approves a large send; the requester's own approval is refused
    (the page says so)."""
    try:
        campaign = control.approve_send(campaign_id, current_actor())
    except AppError as err:
        flash(err.message, "error")
    else:
        if campaign.status == S.SCHEDULED:
            flash(f"Approved: it sends at {timefmt.when_text(campaign.scheduled_at)}.", "success")
        else:
            flash(f"Approved: sending to {campaign.total:,} recipients.", "success")
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
