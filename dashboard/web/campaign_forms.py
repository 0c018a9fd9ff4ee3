from __future__ import annotations

from flask_wtf.file import FileField
from wtforms import IntegerField, RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import NumberRange, Optional

from dashboard.web.forms import HeraldForm

CHANNEL_CHOICES = [SelectChoice("in_app", "In-app feed"), SelectChoice("email", "Email"),
                   SelectChoice("webhook", "Webhook")]
MODE_CHOICES = [SelectChoice("batch", "Batch — chunks under the channel's rate limit (best for large sends)"),
                SelectChoice("realtime", "Realtime — one job per recipient, unthrottled (for a few targets)")]


class CampaignForm(HeraldForm):
    name = StringField("Campaign name")
    template_id = SelectField("Template", choices=[])
    channel = SelectField("Channel", choices=CHANNEL_CHOICES, default="in_app")
    delivery_mode = RadioField("Delivery", choices=MODE_CHOICES, default="batch")
    failure_threshold = IntegerField("Stop when failures exceed (%)", default=50,
                                     validators=[Optional(), NumberRange(1, 100, "Enter a percentage from 1 to 100.")])


class AddRecipientsForm(HeraldForm):
    user_ids = TextAreaField("User IDs", render_kw={"rows": 4, "placeholder": "user-1\nuser-2, user-3"})


class UploadForm(HeraldForm):
    file = FileField("CSV file", render_kw={"accept": ".csv,text/csv"})
