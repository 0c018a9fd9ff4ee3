from __future__ import annotations

from dashboard.extensions import db
from dashboard.models import AuditEvent
from dashboard.services.actor import Actor


def record(actor: Actor, action: str, target_type: str, target_id, *, from_status=None,
           to_status=None, details: dict | None = None) -> AuditEvent:
    """Add an audit row to the current transaction (the caller commits)."""
    event = AuditEvent(
        actor_account_id=actor.account_id, actor_api_key_id=actor.api_key_id,
        actor_label=actor.label, action=action, target_type=target_type,
        target_id=str(target_id), from_status=from_status, to_status=to_status,
        details=details or {},
    )
    db.session.add(event)
    return event
