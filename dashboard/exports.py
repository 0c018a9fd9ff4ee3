"""CSV export of a campaign's recipients, streamed, with formula cells neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from dashboard import queries, rendering
from dashboard.models import Campaign
from dashboard.services.campaigns import send_version
from dashboard.services.uploads import neutralise

HEADER = ["userId", "email", "status", "attempts", "lastError", "sentAt"]


def recipients_csv_stream(campaign: Campaign) -> Iterator[str]:
    """Everything the body needs from the campaign is read now, inside the request: the body is
    produced after the view returns, when lazy relations can no longer load."""
    keys = [v["key"] for v in send_version(campaign).variable_schema]
    return _lines(campaign.id, keys)


def _lines(campaign_id: int, keys: list[str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*HEADER, *keys])
    count = 0
    for r in queries.recipients_for_export(campaign_id):
        writer.writerow([neutralise(c) for c in (r.user_id, r.email or "", r.status, r.attempts, r.last_error or "",
                                                 r.sent_at.isoformat() if r.sent_at else "",
                                                 *(rendering.value_text((r.variables or {}).get(k)) for k in keys))])
        count += 1
        if count % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
