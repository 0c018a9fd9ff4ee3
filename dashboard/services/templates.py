"""Template writes: validation, create, edit (in place or as version N+1), approve, archive.

Four-eyes (workspace setting): every create or edit records the editing account on the version
(`edited_by_id`); while the setting is on, approval must come from a different account. A
version whose editor is unknown (written before this rule existed, or by the system) may be
approved by any account: there is no editor to keep apart, and refusing would strand it."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from dashboard import rendering
from dashboard.errors import FieldErrors, LifecycleError, NotFound, ValidationError, is_unique_violation
from dashboard.extensions import db
from dashboard.models import Template, TemplateStatus, TemplateVersion, utcnow
from dashboard.services import audit
from dashboard.services.actor import Actor

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
CHANNEL_FIELDS = {
    "in_app": {"title": True, "body": True, "imageUrl": False, "actionUrl": False},
    "email": {"subject": True, "text": True, "html": False},
}
URL_FIELDS = {"imageUrl", "actionUrl"}
SINGLE_LINE = {"title", "subject", "imageUrl", "actionUrl"}
MAX_VARIABLES = 50
MAX_TEXT = 20_000
MAX_SAMPLE = 2_000


def slugify(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60].strip("-") or "template"




def _clean_schema(raw, errors: FieldErrors) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors.add("variableSchema", "must be a list of variables")
        return []
    if len(raw) > MAX_VARIABLES:
        errors.add("variableSchema", f"at most {MAX_VARIABLES} variables")
    schema, seen = [], set()
    for i, var in enumerate(raw):
        where = f"variableSchema[{i}]"
        if not isinstance(var, dict):
            errors.add(where, "must be an object with key and type")
            continue
        key = var.get("key")
        key = key.strip() if isinstance(key, str) else ""
        var_type = "string" if var.get("type") is None else var["type"]
        if not key:
            errors.add(f"{where}.key", "a key is required")
        elif not rendering.KEY_RE.match(key):
            errors.add(f"{where}.key", f'"{key}" is not a valid key: use letters, digits and _ '
                                       "and start with a letter or _")
        elif key in seen:
            errors.add(f"{where}.key", f'duplicate key "{key}"')
        seen.add(key)
        if not isinstance(var_type, str) or var_type not in rendering.VARIABLE_TYPES:
            errors.add(f"{where}.type", f'unknown type "{var_type}": use string, image or action')
        default = var.get("defaultValue")
        if default in ("",):
            default = None
        if default is not None and var_type != "string":
            errors.add(f"{where}.defaultValue", f"a default value is only allowed for string variables, not {var_type}")
        elif default is not None and not isinstance(default, str):
            errors.add(f"{where}.defaultValue", "the default value must be text")
        label = "" if var.get("label") is None else var["label"]
        if not isinstance(label, str) or len(label) > 200:
            errors.add(f"{where}.label", "the label must be text of at most 200 characters")
        required = var.get("required")
        if required is not None and not isinstance(required, bool):
            errors.add(f"{where}.required", "must be true or false")
        sample = "" if var.get("sample") is None else var["sample"]
        if not isinstance(sample, str) or len(sample) > MAX_SAMPLE:
            errors.add(f"{where}.sample", f"the sample value must be text of at most {MAX_SAMPLE} characters")
            sample = ""
        elif sample and isinstance(var_type, str) and var_type in rendering.URL_TYPES \
                and (problem := rendering.check_value(var_type, sample)):
            errors.add(f"{where}.sample", f"the sample {problem}")
        clean = {"key": key, "type": var_type, "label": label.strip() if isinstance(label, str) else "",
                 "required": required is True}
        if default is not None:
            clean["defaultValue"] = default
        if sample:
            clean["sample"] = sample
        schema.append(clean)
    return schema


def _clean_channels(raw, errors: FieldErrors, *, complete: bool = True) -> dict:
    """complete=False (the editor's live check) leaves out "required"/"at least one channel"."""
    if not isinstance(raw, dict) or not raw:
        if complete:
            errors.add("channels", "add content for at least one channel (in_app or email)")
        return {}
    channels = {}
    for name, content in raw.items():
        if name not in CHANNEL_FIELDS:
            errors.add(f"channels.{name}", f'unknown channel "{name}": use in_app or email')
            continue
        if not isinstance(content, dict):
            errors.add(f"channels.{name}", "must be an object")
            continue
        clean = {}
        for field, required in CHANNEL_FIELDS[name].items():
            value = content.get(field)
            value = "" if value is None else value
            if not isinstance(value, str):
                errors.add(f"channels.{name}.{field}", "must be text")
                continue
            if field in SINGLE_LINE:
                value = value.strip()
            if required and complete and not value.strip():
                errors.add(f"channels.{name}.{field}", "is required for an enabled channel")
            if len(value) > MAX_TEXT:
                errors.add(f"channels.{name}.{field}", f"at most {MAX_TEXT} characters")
            if field in URL_FIELDS and value and (problem := rendering.url_field_problem(value)):
                errors.add(f"channels.{name}.{field}", problem)
            if value:
                clean[field] = value
        for extra in set(content) - set(CHANNEL_FIELDS[name]):
            errors.add(f"channels.{name}.{extra}", f'unknown field "{extra}"')
        channels[name] = clean
    return channels


def _check_placeholders(channels: dict, schema: list[dict], errors: FieldErrors) -> None:
    keys = {v["key"] for v in schema}
    for name, content in channels.items():
        for field, text in content.items():
            for key in rendering.placeholders(text):
                if key not in keys:
                    errors.add(f"channels.{name}.{field}",
                               f'uses {{{{ {key} }}}}, which is not in the variable schema')
    starts_url = rendering.url_keys(channels)
    for i, var in enumerate(schema):
        for attr in ("defaultValue", "sample"):
            checked = attr == "sample" and var["type"] in rendering.URL_TYPES  # with its schema row
            if var["key"] in starts_url and attr in var and not checked \
                    and rendering.check_value(var["type"], var[attr], starts_url=True):
                errors.add(f"variableSchema[{i}].{attr}",
                           f"must be an http(s) URL: {{{{ {var['key']} }}}} starts an image or action URL")


def validate(data: dict, current: dict | None = None) -> dict:
    """Return the cleaned template fields or raise ValidationError with field-level details.

    `current` holds the existing values for a partial update (PATCH)."""
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object.")
    merged = dict(current or {})
    merged.update({k: v for k, v in data.items() if v is not None or k not in merged})
    errors = FieldErrors()
    name = merged.get("name")
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        errors.add("name", "a name is required")
    elif len(name) > 200:
        errors.add("name", "at most 200 characters")
    category = "" if merged.get("category") is None else merged["category"]
    if not isinstance(category, str) or len(category) > 64:
        errors.add("category", "must be text of at most 64 characters")
        category = ""
    tags = merged.get("tags")
    tags = [] if tags is None else tags
    if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t.strip()) <= 32 for t in tags) \
            or len(tags) > 20:
        errors.add("tags", "must be a list of at most 20 tags of 1-32 characters")
        tags = []
    schema = _clean_schema(merged.get("variableSchema"), errors)
    channels = _clean_channels(merged.get("channels"), errors)
    _check_placeholders(channels, schema, errors)
    errors.raise_if_any()
    return {"name": name, "category": category.strip(), "tags": [t.strip() for t in tags],
            "channels": channels, "variableSchema": schema}


def content_problems(data: dict) -> list[dict]:
    """The variable and content rules of `validate` for an unsaved editor state (the live
    preview): undeclared placeholders, bad keys, URL rules; not the "still empty" ones."""
    errors = FieldErrors()
    schema = _clean_schema(data.get("variableSchema"), errors)
    channels = _clean_channels(data.get("channels"), errors, complete=False)
    _check_placeholders(channels, schema, errors)
    return errors.items


def live_version(template: Template) -> TemplateVersion | None:
    """The newest approved version: what campaigns send unless they picked another one."""
    if template.status == TemplateStatus.ARCHIVED:
        return None
    return next((v for v in reversed(template.versions) if v.approved_at is not None), None)


def approved_versions(template: Template) -> list[TemplateVersion]:
    """Approved versions, newest first (none for an archived template)."""
    if template.status == TemplateStatus.ARCHIVED:
        return []
    return [v for v in reversed(template.versions) if v.approved_at is not None]


def version_state(template: Template) -> dict:
    """What the header says: the live (approved) version and the draft being edited, if any;
    e.g. live v1 and draft v2 while an edit of an approved template awaits approval."""
    current = template.current
    draft = current if template.status == TemplateStatus.DRAFT else None
    return {"live": live_version(template), "draft": draft,
            "archived": template.status == TemplateStatus.ARCHIVED, "version": current.version}


def get(template_id: str) -> Template:
    template = db.session.scalar(select(Template).where(Template.template_id == template_id))
    if template is None:
        raise NotFound(f'No template "{template_id}".')
    return template


def _unique_slug(base: str) -> str:
    """base, else base-2, base-3 ... (a long base is cut to 58 characters before the suffix, so
    the taken set is read by that shorter prefix: it must see the shortened candidates too)."""
    prefix = base[:58]
    taken = set(db.session.scalars(select(Template.template_id).where(Template.template_id.like(f"{prefix}%"))))
    slug, n = base, 2
    while slug in taken:
        slug = f"{prefix}-{n}"
        n += 1
    return slug


def create(data: dict, actor: Actor) -> Template:
    clean = validate(data)
    given = data.get("templateId")
    if given not in (None, ""):
        if not isinstance(given, str) or not SLUG_RE.match(given):
            raise ValidationError("templateId: use lowercase letters, digits and dashes (at most 64)",
                                  [{"field": "templateId",
                                    "message": "use lowercase letters, digits and dashes (at most 64)"}])
    for _attempt in range(3):  # a concurrent create may take the free slug between our read and insert
        if given not in (None, "") and db.session.scalar(select(Template.id).where(Template.template_id == given)):
            raise ValidationError(f'templateId: "{given}" is already taken',
                                  [{"field": "templateId", "message": f'"{given}" is already taken'}])
        slug = given if given not in (None, "") else _unique_slug(slugify(clean["name"]))
        template = Template(template_id=slug, name=clean["name"], category=clean["category"], tags=clean["tags"],
                            status=TemplateStatus.DRAFT, version=1)
        template.versions.append(TemplateVersion(version=1, name=clean["name"], channels=clean["channels"],
                                                 variable_schema=clean["variableSchema"], created_by=actor.label,
                                                 edited_by_id=actor.account_id))
        db.session.add(template)
        try:
            db.session.flush()
        except IntegrityError as err:
            db.session.rollback()
            if not is_unique_violation(err):
                raise
            continue
        audit.record(actor, "template.created", "template", slug, to_status=TemplateStatus.DRAFT)
        db.session.commit()
        return template
    raise LifecycleError("Other templates were being created with the same name at the same moment; "
                         "try again.")


def as_input(template: Template) -> dict:
    current = template.current
    return {"name": template.name, "category": template.category, "tags": template.tags,
            "channels": current.channels, "variableSchema": current.variable_schema}


def update(template_id: str, data: dict, actor: Actor) -> Template:
    """Drafts change in place; an approved template gets version N+1 and needs approval again."""
    template = get(template_id)
    if template.status == TemplateStatus.ARCHIVED:
        raise LifecycleError(f"Template is {template.status}; archived templates cannot be edited.")
    if "templateId" in data and data["templateId"] not in (None, template.template_id):
        raise ValidationError("templateId cannot be changed",
                              [{"field": "templateId", "message": "cannot be changed after creation"}])
    clean = validate({k: v for k, v in data.items() if k != "templateId"}, as_input(template))
    old_status = template.status
    if template.status == TemplateStatus.APPROVED:
        template.version += 1
        template.versions.append(TemplateVersion(version=template.version, name=clean["name"],
                                                 channels=clean["channels"],
                                                 variable_schema=clean["variableSchema"], created_by=actor.label,
                                                 edited_by_id=actor.account_id))
        template.status = TemplateStatus.DRAFT
    else:
        current = template.current
        current.name, current.channels = clean["name"], clean["channels"]
        current.variable_schema = clean["variableSchema"]
        current.edited_by_id = actor.account_id
    template.name, template.category, template.tags = clean["name"], clean["category"], clean["tags"]
    template.updated_at = utcnow()
    audit.record(actor, "template.edited", "template", template.template_id, from_status=old_status,
                 to_status=template.status, details={"version": template.version})
    db.session.commit()
    return template


_MOVES = {
    "approve": ((TemplateStatus.DRAFT,), TemplateStatus.APPROVED),
    "archive": ((TemplateStatus.DRAFT, TemplateStatus.APPROVED), TemplateStatus.ARCHIVED),
}


def own_edit(version: TemplateVersion, actor: Actor) -> bool:
    """True when four-eyes keeps `actor` from approving `version`: the setting is on and the
    actor last edited it, or the actor has no account (the system is nobody's second pair of
    eyes). An unknown editor (edited_by_id NULL: before this rule, or the system) binds no one."""
    from dashboard.services import workspace

    if not workspace.four_eyes().enabled:
        return False
    return actor.account_id is None or version.edited_by_id == actor.account_id


def check_four_eyes(template: Template, actor: Actor) -> None:
    from dashboard.services.control import FourEyesRequired

    version = template.current
    if not own_edit(version, actor):
        return
    if actor.account_id is None:
        raise FourEyesRequired(f"Four-eyes approval is on: version {version.version} must be approved by a "
                               "person's account, not by the system.")
    raise FourEyesRequired(f"Four-eyes approval is on: you last edited version {version.version}, so another "
                           "person must approve it.")


def transition(template_id: str, action: str, actor: Actor) -> Template:
    """The one table of template moves, each a conditional UPDATE so races can't both win."""
    template = get(template_id)
    sources, target = _MOVES[action]
    if template.status == target:
        return template  # approving an approved template is a no-op, not an error
    now, old_status = utcnow(), template.status
    values = {"status": target, "updated_at": now}
    where = [Template.id == template.id, Template.status.in_(sources)]
    if target == TemplateStatus.APPROVED:
        validate(as_input(template))
        check_four_eyes(template, actor)
        values["approved_at"] = now
        # an edit committed between our read and this UPDATE (new content, perhaps a new last
        # editor) must not be approved unseen: every edit moves updated_at
        where.append(Template.updated_at == template.updated_at)
    result = db.session.execute(sql_update(Template).where(*where).values(**values))
    if result.rowcount != 1:
        db.session.rollback()
        status = get(template_id).status
        if status in sources:
            raise LifecycleError("The template was edited while you were approving it; review the new "
                                 "content and approve again.")
        raise LifecycleError(f"Template is {status}; it cannot be {action}d.")
    details = {"version": template.version}
    if target == TemplateStatus.APPROVED:
        template.current.approved_at, template.current.approved_by = now, actor.label[:300]
        details["approvedBy"] = actor.label
        if template.current.edited_by_id is not None:
            details["editedById"] = template.current.edited_by_id
    audit.record(actor, f"template.{action}d", "template", template.template_id,
                 from_status=old_status, to_status=target, details=details)
    db.session.commit()
    db.session.refresh(template)
    return template
