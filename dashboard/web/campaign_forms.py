from __future__ import annotations

import re

from flask_wtf.file import FileField
from wtforms import IntegerField, RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import NumberRange, Optional

from dashboard.errors import AppError
from dashboard.web.forms import HeraldForm

LINE_SPLIT = re.compile(r"\r\n|\r|\n")
SHOWN_PROBLEMS = 10

CHANNEL_CHOICES = [SelectChoice("in_app", "In-app feed"), SelectChoice("email", "Email"),
                   SelectChoice("webhook", "Webhook")]
MODE_CHOICES = [SelectChoice("batch", "Batch — chunks under the channel's rate limit (best for large sends)"),
                SelectChoice("realtime", "Realtime — one job per recipient, unthrottled (for a few targets)")]


class CampaignForm(HeraldForm):
    name = StringField("Campaign name")
    template_id = SelectField("Template", choices=[])
    template_version = StringField("Version")  # an approved version number; drawn by campaigns/_version_pick.html
    channel = SelectField("Channel", choices=CHANNEL_CHOICES, default="in_app")
    delivery_mode = RadioField("Delivery", choices=MODE_CHOICES, default="batch")
    failure_threshold = IntegerField("Stop when failures exceed (%)", default=50,
                                     validators=[Optional(), NumberRange(1, 100, "Enter a percentage from 1 to 100.")])


class AddRecipientsForm(HeraldForm):
    user_ids = TextAreaField("User IDs", render_kw={"rows": 4, "placeholder": "user-1\nuser-2, user-3"})


class UploadForm(HeraldForm):
    file = FileField("CSV file", render_kw={"accept": ".csv,text/csv"})


def parse_user_ids(text: str) -> list[tuple[int, str]]:
    """Hand-typed IDs as (line number, id): split on newlines and commas only, so "bad id!" stays one
    (invalid) id rather than becoming "bad" and "id!"."""
    return [(number, part.strip()) for number, line in enumerate(LINE_SPLIT.split(text), start=1)
            for part in line.split(",") if part.strip()]


def add_problems(err: AppError, lines: list[tuple[int, str]], schema: list[dict]) -> dict:
    """What the add-IDs form shows for a refused add: a summary, the problems by line, and the
    required variables that need a campaign default."""
    labels = {v["key"]: v.get("label") or v["key"] for v in schema}
    missing = [{"key": d["variable"], "label": labels.get(d["variable"], d["variable"])}
               for d in err.details if "variable" in d]
    if missing:
        names = ", ".join(m["label"] for m in missing)
        count = sum(1 for d in err.details if "missing" in d)
        return {"message": f"Nothing was added: {names} {'is' if len(missing) == 1 else 'are'} required and "
                           f"neither this campaign nor the template has a default, so "
                           f"{'this user ID' if count == 1 else f'these {count:,} user IDs'} would have no value. "
                           "Set a campaign default below (or upload a CSV with the values).",
                "lines": [], "missing": missing}
    bad = [(lines[d["index"]][0], d["message"]) for d in err.details if "index" in d and d["index"] < len(lines)]
    if not bad:
        fields = [f"{d['field'].replace('variables.', 'Default for ')}: {d['message']}"
                  for d in err.details if d.get("field", "").startswith("variables.")]
        return {"message": err.message, "lines": fields, "missing": []}
    shown = [f"line {number}: {message}" for number, message in bad[:SHOWN_PROBLEMS]]
    if len(bad) > SHOWN_PROBLEMS:
        shown.append(f"… and {len(bad) - SHOWN_PROBLEMS:,} more")
    plural = len(bad) != 1
    return {"message": f"{len(bad):,} user ID{'s are' if plural else ' is'} not valid; nothing was added. "
                       "Fix the line" + ("s" if plural else "") + " below and add again.",
            "lines": shown, "missing": []}
