"""The template editor form, and its translation to and from the service's payload."""

from __future__ import annotations

import re

from wtforms import BooleanField, FieldList, FormField, SelectChoice, SelectField, StringField, TextAreaField

from dashboard.errors import ValidationError
from dashboard.models import Template, TemplateVersion
from dashboard.web.forms import HeraldForm, SubForm

TYPE_CHOICES = [SelectChoice("string", "Text"), SelectChoice("image", "Image URL"),
                SelectChoice("action", "Action URL")]


class VariableForm(SubForm):
    key = StringField("Key")
    type = SelectField("Type", choices=TYPE_CHOICES, default="string")
    label = StringField("Label")
    required = BooleanField("Required")
    default_value = StringField("Default")
    sample = StringField("Sample value")


class TemplateForm(HeraldForm):
    name = StringField("Name")
    template_id = StringField("Template ID")
    category = StringField("Category")
    tags = StringField("Tags")
    in_app_enabled = BooleanField("In-app", default=True)
    in_app_title = StringField("Title")
    in_app_body = TextAreaField("Body")
    in_app_image_url = StringField("Image URL")
    in_app_action_url = StringField("Action URL")
    email_enabled = BooleanField("Email")
    email_subject = StringField("Subject")
    email_text = TextAreaField("Plain text")
    email_html = TextAreaField("HTML (optional)")
    variables = FieldList(FormField(VariableForm), min_entries=0, max_entries=50)


CHANNEL_FIELDS = {
    "channels.in_app.title": "in_app_title", "channels.in_app.body": "in_app_body",
    "channels.in_app.imageUrl": "in_app_image_url", "channels.in_app.actionUrl": "in_app_action_url",
    "channels.email.subject": "email_subject", "channels.email.text": "email_text",
    "channels.email.html": "email_html", "name": "name", "templateId": "template_id",
    "category": "category", "tags": "tags",
}
VARIABLE_FIELDS = {"key": "key", "type": "type", "label": "label", "defaultValue": "default_value",
                   "sample": "sample"}
FIELD_LABELS = {"channels.in_app.title": "In-app title", "channels.in_app.body": "In-app body",
                "channels.in_app.imageUrl": "Image URL", "channels.in_app.actionUrl": "Action URL",
                "channels.email.subject": "Email subject", "channels.email.text": "Email plain text",
                "channels.email.html": "Email HTML"}
VARIABLE_LABELS = {"key": "key", "type": "type", "label": "label", "defaultValue": "default",
                   "sample": "sample value", "required": "required"}
ROW_RE = re.compile(r"^variableSchema\[(\d+)\]\.(\w+)$")


def data_from_template(template: Template | None, version: TemplateVersion | None = None) -> dict:
    """Initial editor data for an existing template (or an empty new one)."""
    if template is None:
        return {"in_app_enabled": True, "variables": [{"key": "firstName", "type": "string",
                                                       "label": "First name", "default_value": "there"}]}
    version = version or template.current
    in_app = version.channels.get("in_app")
    email = version.channels.get("email")
    return {
        "name": template.name, "template_id": template.template_id, "category": template.category,
        "tags": ", ".join(template.tags),
        "in_app_enabled": in_app is not None, "in_app_title": (in_app or {}).get("title", ""),
        "in_app_body": (in_app or {}).get("body", ""), "in_app_image_url": (in_app or {}).get("imageUrl", ""),
        "in_app_action_url": (in_app or {}).get("actionUrl", ""),
        "email_enabled": email is not None, "email_subject": (email or {}).get("subject", ""),
        "email_text": (email or {}).get("text", ""), "email_html": (email or {}).get("html", ""),
        "variables": [{"key": v["key"], "type": v["type"], "label": v.get("label", ""),
                       "required": v.get("required", False), "default_value": v.get("defaultValue", ""),
                       "sample": v.get("sample", "")} for v in version.variable_schema],
    }


def payload_from_form(form: TemplateForm) -> tuple[dict, list[int]]:
    """The service payload, plus which form row each schema entry came from (blank rows skipped)."""
    channels = {}
    if form.in_app_enabled.data:
        channels["in_app"] = {"title": form.in_app_title.data or "", "body": form.in_app_body.data or "",
                              "imageUrl": form.in_app_image_url.data or "",
                              "actionUrl": form.in_app_action_url.data or ""}
    if form.email_enabled.data:
        channels["email"] = {"subject": form.email_subject.data or "", "text": form.email_text.data or "",
                             "html": form.email_html.data or ""}
    schema, rows = [], []
    for index, entry in enumerate(form.variables.entries):
        row = entry.form
        filled = [(row.key.data or "").strip(), (row.label.data or "").strip(), (row.default_value.data or "").strip(),
                  (row.sample.data or "").strip()]
        if not any(filled):
            continue
        schema.append({"key": (row.key.data or "").strip(), "type": row.type.data, "label": row.label.data or "",
                       "required": bool(row.required.data), "defaultValue": row.default_value.data or None,
                       "sample": (row.sample.data or "").strip() or None})
        rows.append(index)
    tags = [tag for tag in (part.strip() for part in (form.tags.data or "").split(",")) if tag]
    payload = {"name": form.name.data or "", "category": form.category.data or "", "tags": tags,
               "channels": channels, "variableSchema": schema}
    if form.template_id.data:
        payload["templateId"] = form.template_id.data.strip()
    return payload, rows


def problem_messages(problems: list[dict], payload: dict, rows: list[int]) -> list[str]:
    """The service's live-check problems as sentences naming the field or variable row."""
    schema = payload.get("variableSchema", [])
    messages = []
    for problem in problems:
        path, message = problem.get("field", ""), problem["message"]
        if path in FIELD_LABELS:
            messages.append(f"{FIELD_LABELS[path]} {message}")
        elif (match := ROW_RE.match(path)) and int(match.group(1)) < len(rows):
            index, attr = int(match.group(1)), match.group(2)
            key = schema[index].get("key") or f"row {rows[index] + 1}"
            messages.append(f"Variable {key}, {VARIABLE_LABELS.get(attr, attr)}: {message}")
        else:
            messages.append(f"{path}: {message}" if path else message)
    return messages


def apply_errors(form: TemplateForm, err: ValidationError, rows: list[int]) -> None:
    """Put each service error next to the field it is about."""
    for detail in err.details:
        path, message = detail.get("field", ""), detail["message"]
        field = None
        if path in CHANNEL_FIELDS:
            field = getattr(form, CHANNEL_FIELDS[path])
        elif match := ROW_RE.match(path):
            index, attr = int(match.group(1)), match.group(2)
            if index < len(rows) and attr in VARIABLE_FIELDS:
                field = getattr(form.variables.entries[rows[index]].form, VARIABLE_FIELDS[attr])
        if field is not None:
            field.errors = [*field.errors, message]
        else:
            form.form_errors.append(f"{path}: {message}" if path else message)
    if not err.details:
        form.form_errors.append(err.message)
