"""Campaign forms: the draft, recipients (typed or uploaded), and Review & send's delivery options."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import NumberRange, Optional

from dashboard.errors import AppError, ValidationError
from dashboard.services import control
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
    track_clicks = BooleanField("Track link clicks in emails", default=True)


class AddRecipientsForm(HeraldForm):
    user_ids = TextAreaField("User IDs", render_kw={"rows": 4, "placeholder": "user-1\nuser-2, user-3"})


class UploadForm(HeraldForm):
    file = FileField("CSV file", render_kw={"accept": ".csv,text/csv"})


CANARY_CHOICES = [SelectChoice("off", "Off — send to everyone at once"), SelectChoice("size", "A number"),
                  SelectChoice("percent", "A percentage")]  # the number input and its unit follow the label
HALT_CHOICES = [SelectChoice("canary", "With a canary wave (default)"),
                SelectChoice("always", "Always, also without a canary"), SelectChoice("off", "Off")]
NUMBER = {"type": "number", "inputmode": "decimal", "step": "any", "min": "0"}
PASSED_CHOICES = [SelectChoice("next_day", "Send it the next day at that time"),
                  SelectChoice("now", "Send it to them now")]
SEND_AT_FIELDS = {"sendAt.localTime": ("localTime", "local_time", "The local time"),
                  "sendAt.date": ("date", "local_date", "The date"),
                  "sendAt.fallbackZone": ("fallbackZone", "fallback_zone", "The fallback time zone"),
                  "sendAt.passed": ("passed", "passed", "The choice for recipients whose time has passed")}


class SendOptionsForm(HeraldForm):
    """Review & send's "Advanced delivery". Numbers are kept as typed: control.parse_options
    judges them, so the dashboard refuses exactly what the API refuses, in the same words.
    The automatic pause follows the API's default (on with a canary, off without one) unless
    the marketer picks "always" or "off"; a plain Send now therefore sends as it always did."""

    advanced = HiddenField(default="1")  # the send came with these fields (the live page's Send now has none)
    canary = RadioField("Canary first wave", choices=CANARY_CHOICES, default="off")
    canary_size = StringField("Recipients in the first wave", render_kw=NUMBER | {"inputmode": "numeric"})
    canary_percent = StringField("Percent of the audience in the first wave", render_kw=NUMBER)
    hold_minutes = StringField("Hold after the first wave (minutes)", render_kw=NUMBER | {"inputmode": "numeric"})
    halt = RadioField("Pause automatically", choices=HALT_CHOICES, default="canary")
    halt_percent = StringField("Failure percentage", default="5", render_kw=NUMBER)
    halt_window = StringField("Deliveries watched", default="200", render_kw=NUMBER | {"inputmode": "numeric"})
    spread_minutes = StringField("Spread the send over (minutes)", render_kw=NUMBER | {"inputmode": "numeric"})
    # "At a time in each recipient's time zone" (the API's sendAt); used when the marketer presses its button.
    local_time = StringField("Local time", default="09:00", render_kw={"type": "time", "class": "time-input"})
    local_date = StringField("Date", render_kw={"type": "date", "class": "date-input"})
    fallback_zone = StringField("Fallback time zone")  # drawn by _zone_picker.html
    passed = RadioField("If the time has already passed for some recipients", choices=PASSED_CHOICES,
                        default="next_day")
    ignore_quiet_hours = BooleanField("Ignore quiet hours (urgent)")
    ignore_frequency_cap = BooleanField("Ignore frequency caps")

    def body(self, local: bool = False) -> dict:
        """The API's send options (camelCase) from what was typed; `local`: the local-time send's sendAt too."""
        body: dict = {}
        if local:
            body["sendAt"] = {"localTime": (self.local_time.data or "").strip(),
                              "date": (self.local_date.data or "").strip(),
                              "fallbackZone": (self.fallback_zone.data or "").strip(), "passed": self.passed.data}
        if self.ignore_quiet_hours.data:
            body["ignoreQuietHours"] = True
        if self.ignore_frequency_cap.data:
            body["ignoreFrequencyCap"] = True
        if self.canary.data in ("size", "percent"):
            body["canary"] = {self.canary.data: number(self[f"canary_{self.canary.data}"].data)}
            if (self.hold_minutes.data or "").strip():
                body["canary"]["holdMinutes"] = number(self.hold_minutes.data)
        if self.halt.data == "off":
            body["haltRule"] = None
        elif self.halt.data == "always" or "canary" in body:
            body["haltRule"] = {"percent": number(self.halt_percent.data), "window": number(self.halt_window.data)}
        if (self.spread_minutes.data or "").strip():
            body["spreadMinutes"] = number(self.spread_minutes.data)
        return body

    def options(self, local: bool = False) -> control.SendOptions:
        """control.parse_options over the typed values; every refused part is reported at once
        (ValidationError with the API's field names), not only the first."""
        body = self.body(local)
        problems = []
        if "canary" in body and body["canary"][self.canary.data] is None:
            noun = "recipients" if self.canary.data == "size" else "a percentage"
            problems.append({"field": f"canary.{self.canary.data}", "message": f"enter {noun} for the first wave"})
        else:
            parts = [{k: body[k]} for k in ("haltRule", "spreadMinutes") if k in body]
            if "canary" in body:  # the wave's size and its hold, each judged on its own
                wave = {k: v for k, v in body["canary"].items() if k != "holdMinutes"}
                parts.append({"canary": wave})
                if "holdMinutes" in body["canary"]:
                    parts.append({"canary": {"size": 1, "holdMinutes": body["canary"]["holdMinutes"]}})
            for part in parts:
                try:
                    control.parse_options(part)
                except ValidationError as err:
                    problems += err.details
        if "sendAt" in body:
            problems += send_at_problems(body["sendAt"])
        if problems:
            raise ValidationError("Check the delivery options: nothing was sent.", problems)
        return control.parse_options(body)

    def show_errors(self, err: ValidationError) -> list[str]:
        """Put the API's field problems next to their inputs; returns what belongs to no input."""
        fields = {"canary": self[f"canary_{self.canary.data}"] if self.canary.data in ("size", "percent")
                  else self.canary, "canary.size": self.canary_size, "canary.percent": self.canary_percent,
                  "canary.holdMinutes": self.hold_minutes, "haltRule": self.halt, "haltRule.percent": self.halt_percent,
                  "haltRule.window": self.halt_window, "spreadMinutes": self.spread_minutes,
                  "sendAt": self.local_time, "ignoreQuietHours": self.ignore_quiet_hours,
                  "ignoreFrequencyCap": self.ignore_frequency_cap}
        fields |= {api: self[name] for api, (_, name, _) in SEND_AT_FIELDS.items()}
        rest = []
        for detail in err.details:
            field = fields.get(detail.get("field"))
            text = sentence(detail.get("message", ""))
            if field is None:
                rest.append(text)
            else:
                field.errors = [*field.errors, text]
        return rest

    def touched(self) -> bool:
        """Anything other than the defaults chosen (the section opens to show it)."""
        return (self.canary.data != "off" or self.halt.data != "canary"
                or bool((self.spread_minutes.data or "").strip())
                or (self.halt_percent.data or "") != "5" or (self.halt_window.data or "") != "200"
                or bool(self.ignore_quiet_hours.data or self.ignore_frequency_cap.data)
                or any(f.errors for f in self if f.name not in LOCAL_FIELDS))

    def local_open(self) -> bool:
        """The local-time panel opens when a refused local-time send comes back."""
        return any(self[name].errors for name in LOCAL_FIELDS)

    def typed(self) -> dict:
        """What was typed, to show again after a refusal (checkboxes as "y" or "")."""
        return {f.name: ("y" if f.data else "") if isinstance(f, BooleanField) else (f.data or "")[:64]
                for f in self if f.name != "csrf_token"}


LOCAL_FIELDS = ("local_time", "local_date", "fallback_zone", "passed")


def send_at_problems(given: dict, now: datetime | None = None) -> list[dict]:
    """Each part of sendAt judged on its own by control.parse_options (the others replaced by
    good values), so every refused part is shown at once, in the API's words with the field's
    label for its name: "The date is in the past; pick today or a later day."."""
    today = (now or datetime.now(UTC)).date().isoformat()
    good = {"localTime": "09:00", "date": today, "fallbackZone": "UTC", "passed": "next_day"}
    problems = []
    for api, (key, _, label) in SEND_AT_FIELDS.items():
        try:
            control.parse_options({"sendAt": good | {key: given.get(key)}})
        except ValidationError as err:
            message = err.message.replace(api + ":", label + ":").replace(api, label)
            problems.append({"field": api, "message": message})
    return problems


def number(text: str | None):
    """Typed text -> int or float as the API would receive it; anything else stays a string, so
    control.parse_options refuses it with its own message. "1,000" is read as 1000, "10%" as 10."""
    if text is None:
        return None
    raw = text.strip().replace(",", "").replace(" ", "").removesuffix("%")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        return text.strip()[:40]
    return value if math.isfinite(value) else text.strip()[:40]


def sentence(message: str) -> str:
    """"must be a whole number" -> "Must be a whole number." (a message shown next to its field)."""
    message = message.strip()
    if not message:
        return message
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "?", "!")) else ".")


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
