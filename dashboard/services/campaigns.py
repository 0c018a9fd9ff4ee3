"""Campaign drafts: create, edit, delete. Every draft write goes through `lock_draft`, a
conditional UPDATE that also bumps the revision (staged uploads made before it go stale)."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from dashboard import rendering
from dashboard.errors import LifecycleError, NotFound, ValidationError
from dashboard.extensions import db
from dashboard.inputs import text_problem
from dashboard.models import (
    Campaign,
    CampaignStatus,
    Channel,
    DeliveryMode,
    Recipient,
    Template,
    TemplateStatus,
    TemplateVersion,
    utcnow,
)
from dashboard.services import audit
from dashboard.services import templates as template_service
from dashboard.services.actor import Actor

TEMPLATE_CHANNEL = {Channel.IN_APP: "in_app", Channel.WEBHOOK: "in_app", Channel.EMAIL: "email"}


def get(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"No campaign {campaign_id}.")
    return campaign


def lock_draft(campaign_id: int) -> Campaign:
    """Claim a draft for a change, or raise 409 naming the current status."""
    result = db.session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.DRAFT)
        .values(revision=Campaign.revision + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    campaign = get(campaign_id)
    db.session.refresh(campaign)
    if result.rowcount != 1:
        db.session.rollback()
        raise LifecycleError(f"Campaign is {campaign.status}; only drafts can be changed.",
                             [{"field": "status", "message": campaign.status}])
    return campaign


def _template(template_id, errors: list) -> Template | None:
    if not template_id:
        errors.append({"field": "templateId", "message": "choose a template"})
        return None
    template = db.session.scalar(select(Template).where(Template.template_id == str(template_id)))
    if template is None:
        errors.append({"field": "templateId", "message": f'no template "{template_id}"'})
    elif template.status == TemplateStatus.ARCHIVED:
        errors.append({"field": "templateId", "message": "this template is archived; pick another one"})
        return None
    return template


def pick_version(template: Template, number: int | None) -> TemplateVersion:
    """The version a campaign uses: the one it picked (campaign.template_version), else the
    newest approved one, else (nothing approved yet) the current draft."""
    if number is not None:
        found = next((v for v in template.versions if v.version == number), None)
        if found is not None:
            return found
    return template_service.live_version(template) or template.current


def send_version(campaign: Campaign) -> TemplateVersion:
    """What this campaign sends (or sent: the pin is set at send)."""
    return pick_version(campaign.template, campaign.template_version)


def _version(template: Template, number, errors: list) -> int | None:
    """A picked version must be an approved version of the template; None: the newest approved."""
    if number is None:
        return None
    if isinstance(number, bool) or not isinstance(number, int):
        errors.append({"field": "templateVersion", "message": "must be a version number (or null)"})
        return None
    found = next((v for v in template.versions if v.version == number), None)
    if found is None:
        errors.append({"field": "templateVersion", "message": f'template "{template.template_id}" has no '
                                                              f"version {number}"})
    elif found.approved_at is None:
        errors.append({"field": "templateVersion", "message": f"version {number} is not approved; pick an "
                                                              "approved version (or null for the newest one)"})
    else:
        return number
    return None


def validate_defaults(variables, schema: list[dict], errors: list, field: str = "variables",
                      starts_url: frozenset[str] = frozenset()) -> dict:
    """Variable values (campaign defaults or one recipient's): known keys, values fit for their
    type, http(s) URLs for the keys that start a URL field (rendering.url_keys)."""
    if variables in (None, ""):
        return {}
    if not isinstance(variables, dict):
        errors.append({"field": field, "message": "must be an object of variable values"})
        return {}
    keys = {v["key"]: v for v in schema}
    clean = {}
    for key, value in variables.items():
        if key not in keys:
            errors.append({"field": f"{field}.{key}", "message": f'"{key}" is not a variable of this template'})
            continue
        if value in (None, ""):
            continue
        if isinstance(value, str) and (problem := text_problem(value)):
            errors.append({"field": f"{field}.{key}", "message": f"{key} {problem}"})
            continue
        problem = rendering.check_value(keys[key]["type"], value, starts_url=key in starts_url)
        if problem:
            errors.append({"field": f"{field}.{key}", "message": f"{key} {problem}"})
            continue
        clean[key] = value
    return clean


def validate(data: dict, current: Campaign | None = None) -> dict:
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object.")
    errors: list[dict] = []
    name = data.get("name", current.name if current else "")
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        errors.append({"field": "name", "message": "a name is required"})
    elif len(name) > 200:
        errors.append({"field": "name", "message": "at most 200 characters"})
    template = _template(data.get("templateId", current.template.template_id if current else None), errors)
    number, version = None, None
    if template is not None:
        kept = current.template_version if current is not None and current.template_pk == template.id else None
        number = _version(template, data.get("templateVersion", kept), errors)
        version = pick_version(template, number)
    channel = data.get("channel", current.channel if current else Channel.IN_APP)
    if channel not in list(Channel):
        errors.append({"field": "channel", "message": "must be in_app, email or webhook"})
    elif version is not None and TEMPLATE_CHANNEL[Channel(channel)] not in version.channels:
        needed = "email" if channel == Channel.EMAIL else "in-app"
        errors.append({"field": "channel",
                       "message": f"the template has no {needed} content for the {channel} channel"})
    mode = data.get("deliveryMode", current.delivery_mode if current else DeliveryMode.BATCH)
    if mode not in list(DeliveryMode):
        errors.append({"field": "deliveryMode", "message": "must be realtime or batch"})
    threshold = data.get("failureThreshold", current.failure_threshold if current else 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        errors.append({"field": "failureThreshold", "message": "must be a fraction between 0 (exclusive) and 1"})
    track = data.get("trackClicks", current.track_clicks if current else True)
    if not isinstance(track, bool):
        errors.append({"field": "trackClicks", "message": "must be true or false"})
    variables = {}
    if version is not None:
        variables = validate_defaults(data.get("variables", current.variables if current else {}),
                                      version.variable_schema, errors,
                                      starts_url=rendering.url_keys(version.channels))
    if errors:
        raise ValidationError(f"{errors[0]['field']}: {errors[0]['message']}", errors)
    return {"name": name, "template": template, "template_version": number, "channel": channel,
            "delivery_mode": mode, "failure_threshold": float(threshold), "variables": variables,
            "track_clicks": track is True}


def create(data: dict, actor: Actor) -> Campaign:
    clean = validate(data)
    campaign = Campaign(name=clean["name"], template=clean["template"], template_version=clean["template_version"],
                        channel=clean["channel"],
                        delivery_mode=clean["delivery_mode"], failure_threshold=clean["failure_threshold"],
                        variables=clean["variables"], track_clicks=clean["track_clicks"],
                        status=CampaignStatus.DRAFT, created_by=actor.label)
    db.session.add(campaign)
    db.session.flush()
    audit.record(actor, "campaign.created", "campaign", campaign.id, to_status=CampaignStatus.DRAFT)
    db.session.commit()
    return campaign


def edit(campaign_id: int, data: dict, actor: Actor) -> Campaign:
    campaign = lock_draft(campaign_id)
    clean = validate(data, campaign)
    campaign.name, campaign.template = clean["name"], clean["template"]
    campaign.template_version = clean["template_version"]
    campaign.channel, campaign.delivery_mode = clean["channel"], clean["delivery_mode"]
    campaign.failure_threshold, campaign.variables = clean["failure_threshold"], clean["variables"]
    campaign.track_clicks = clean["track_clicks"]
    audit.record(actor, "campaign.edited", "campaign", campaign.id)
    db.session.commit()
    return campaign


def delete_draft(campaign_id: int, actor: Actor) -> None:
    campaign = lock_draft(campaign_id)
    db.session.execute(delete(Recipient).where(Recipient.campaign_id == campaign.id))
    db.session.execute(delete(Campaign).where(Campaign.id == campaign.id))
    audit.record(actor, "campaign.deleted", "campaign", campaign_id, from_status=CampaignStatus.DRAFT,
                 details={"name": campaign.name})
    db.session.commit()
