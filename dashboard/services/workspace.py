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


# -- recipient time: quiet hours and frequency caps -------------------------------------------

QUIET_HOURS = "quiet_hours"
FREQUENCY_CAPS = "frequency_caps"
CAP_SCOPES = ("all", "in_app", "email", "webhook")
CAP_WINDOWS = {"24h": 24 * 3600, "7d": 7 * 24 * 3600}
MAX_CAP_RULES = 8


def _store(key: str, value: dict, actor: Actor, action: str, before: dict) -> None:
    row = db.session.get(WorkspaceSetting, key)
    if row is None:
        row = WorkspaceSetting(key=key)
        db.session.add(row)
    row.value, row.updated_at, row.updated_by = value, utcnow(), actor.label
    audit.record(actor, action, "workspace", key, details={"before": before, "after": value})
    db.session.commit()


def quiet_hours():
    from dashboard.services.recipient_time import QuietHours, parse_clock

    row = db.session.get(WorkspaceSetting, QUIET_HOURS)
    if row is None or not row.value:
        return QuietHours()
    value = row.value
    return QuietHours(bool(value.get("enabled")), parse_clock(value.get("start", "21:00"), "start"),
                      parse_clock(value.get("end", "08:00"), "end"))


def set_quiet_hours(enabled, start, end, actor: Actor):
    """Quiet hours: a daily window [start, end) in each recipient's zone (it may cross midnight)."""
    from dashboard.services.recipient_time import QuietHours, parse_clock

    if not isinstance(enabled, bool):
        raise ValidationError("enabled must be true or false.", [{"field": "enabled", "message": "must be a boolean"}])
    begin, finish = parse_clock(start, "start"), parse_clock(end, "end")
    if begin == finish:
        raise ValidationError("start and end must differ: the quiet window would be empty (or the whole day).",
                              [{"field": "end", "message": "same as start"}])
    quiet = QuietHours(enabled, begin, finish)
    _store(QUIET_HOURS, quiet.as_json(), actor, "workspace.quiet_hours", quiet_hours().as_json())
    return quiet


@dataclass(frozen=True)
class CapRule:
    channel: str  # "all" or one channel
    limit: int
    window: str  # "24h" | "7d"

    @property
    def seconds(self) -> int:
        return CAP_WINDOWS[self.window]

    def applies_to(self, channel: str) -> bool:
        return self.channel in ("all", channel)

    def reason(self) -> str:
        what = "" if self.channel == "all" else f" {self.channel.replace('_', '-')}"
        span = "24 h" if self.window == "24h" else "7 days"
        return f"frequency cap: {self.limit}{what} in the last {span}"

    def as_json(self) -> dict:
        return {"channel": self.channel, "limit": self.limit, "window": self.window}


def frequency_caps() -> list[CapRule]:
    row = db.session.get(WorkspaceSetting, FREQUENCY_CAPS)
    if row is None or not row.value:
        return []
    return [CapRule(r["channel"], int(r["limit"]), r["window"]) for r in row.value.get("rules", [])]


def parse_cap_rules(rules) -> list[CapRule]:
    if not isinstance(rules, list) or len(rules) > MAX_CAP_RULES:
        raise ValidationError(f"rules must be a list of at most {MAX_CAP_RULES} caps.",
                              [{"field": "rules", "message": f"must be a list of at most {MAX_CAP_RULES}"}])
    out, seen = [], set()
    for i, rule in enumerate(rules):
        field = f"rules[{i}]"
        if not isinstance(rule, dict):
            raise ValidationError(f"{field} must be an object {{channel, limit, window}}.",
                                  [{"field": field, "message": "must be an object"}])
        channel, limit, window = rule.get("channel", "all"), rule.get("limit"), rule.get("window")
        if channel not in CAP_SCOPES:
            raise ValidationError(f"{field}.channel must be one of {', '.join(CAP_SCOPES)}.",
                                  [{"field": f"{field}.channel", "message": "unknown channel"}])
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError(f"{field}.limit must be a whole number from 1 to 1,000 (messages per user).",
                                  [{"field": f"{field}.limit", "message": "must be an integer 1..1000"}])
        if not isinstance(window, str) or window not in CAP_WINDOWS:
            raise ValidationError(f'{field}.window must be "24h" or "7d" (a rolling window).',
                                  [{"field": f"{field}.window", "message": 'must be "24h" or "7d"'}])
        if (channel, window) in seen:
            raise ValidationError(f"{field}: there is already a {window} cap for {channel}.",
                                  [{"field": field, "message": "duplicate"}])
        seen.add((channel, window))
        out.append(CapRule(channel, limit, window))
    return out


def set_frequency_caps(rules, actor: Actor) -> list[CapRule]:
    parsed = parse_cap_rules(rules)
    _store(FREQUENCY_CAPS, {"rules": [r.as_json() for r in parsed]}, actor, "workspace.frequency_caps",
           {"rules": [r.as_json() for r in frequency_caps()]})
    return parsed
