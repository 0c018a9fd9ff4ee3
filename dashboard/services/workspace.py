"""Workspace-wide settings (one row per key). Four-eyes: off by default; when on, a template
version needs approval by an account other than its last editor, and a send of more than
`threshold` recipients needs a second account's approval before it starts."""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.models import WorkspaceSetting, utcnow
from dashboard.services import audit
from dashboard.services.actor import Actor

FOUR_EYES = "four_eyes"
DEFAULT_THRESHOLD = 1000
MAX_THRESHOLD = 10_000_000


@dataclass(frozen=True)
class FourEyes:
    enabled: bool = False
    threshold: int = DEFAULT_THRESHOLD  # sends of more than this many recipients need a second account

    def send_needs_approval(self, recipients: int) -> bool:
        return self.enabled and recipients > self.threshold


def four_eyes() -> FourEyes:
    row = db.session.get(WorkspaceSetting, FOUR_EYES)
    if row is None:
        return FourEyes()
    value = row.value or {}
    return FourEyes(bool(value.get("enabled", False)), int(value.get("threshold", DEFAULT_THRESHOLD)))


def set_four_eyes(enabled, threshold, actor: Actor) -> FourEyes:
    if not isinstance(enabled, bool):
        raise ValidationError("enabled must be true or false.", [{"field": "enabled", "message": "must be a boolean"}])
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= MAX_THRESHOLD:
        raise ValidationError(f"threshold must be a whole number from 0 to {MAX_THRESHOLD:,}.",
                              [{"field": "threshold", "message": f"must be an integer 0..{MAX_THRESHOLD}"}])
    before = four_eyes()
    row = db.session.get(WorkspaceSetting, FOUR_EYES)
    if row is None:
        row = WorkspaceSetting(key=FOUR_EYES)
        db.session.add(row)
    row.value, row.updated_at, row.updated_by = {"enabled": enabled, "threshold": threshold}, utcnow(), actor.label
    audit.record(actor, "workspace.four_eyes", "workspace", FOUR_EYES,
                 details={"before": {"enabled": before.enabled, "threshold": before.threshold},
                          "after": {"enabled": enabled, "threshold": threshold}})
    db.session.commit()
    return FourEyes(enabled, threshold)
