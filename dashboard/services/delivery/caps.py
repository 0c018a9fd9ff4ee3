"""Frequency caps (SPEC §10): at most N campaign messages per user per rolling 24 h / 7 days,
for all channels or one. The count lives in Redis: one sorted set per (scope, user) whose
members are messages ("campaign:recipient") scored by the time they were let through.

Why Redis and not the database: the check must be race-safe across workers sending different
campaigns to the same users at once, and cheap. One Lua script per step checks and reserves a
whole step's users atomically (Redis runs a script alone), so two workers can never both take
a user's last slot — no row locks, no per-recipient query. A reservation is idempotent (the
same message re-tried is the same member), and a message that then fails or is not sent is
released, so the cap counts delivered messages. The price: the window lives as long as Redis
keeps its data; a Redis that loses its data forgets recent sends (caps restart from zero)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from dashboard.extensions import get_redis

log = logging.getLogger(__name__)
PREFIX = "herald:fcap"

# KEYS: per user, one key per scope (nscopes each, in order).
# ARGV: nscopes, nrules, then per rule (scope index 1-based, limit, window seconds), horizon
#       seconds, then one member per user.
# Returns a flat list: for each refused user, its 1-based position and the rule's 1-based index.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nscopes = tonumber(ARGV[1])
local nrules = tonumber(ARGV[2])
local rules = {}
local at = 3
for i = 1, nrules do
  rules[i] = {tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])}
  at = at + 3
end
local horizon = tonumber(ARGV[at])
at = at + 1
local refused = {}
local users = #ARGV - at + 1
for u = 1, users do
  local member = ARGV[at + u - 1]
  local base = (u - 1) * nscopes
  local blocked = 0
  for i = 1, nrules do
    local key = KEYS[base + rules[i][1]]
    -- at the limit, unless this very message was counted already (a retried step)
    if redis.call('ZCOUNT', key, now - rules[i][3], '+inf') >= rules[i][2]
        and not redis.call('ZSCORE', key, member) then
      blocked = i
      break
    end
  end
  if blocked > 0 then
    refused[#refused + 1] = u
    refused[#refused + 1] = blocked
  else
    for s = 1, nscopes do
      local key = KEYS[base + s]
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - horizon)
      redis.call('ZADD', key, 'NX', now, member)
      redis.call('EXPIRE', key, horizon)
    end
  end
end
return refused
"""


@dataclass(frozen=True)
class Caps:
    """The rules that apply to one campaign's channel (captured when its job starts)."""

    campaign_id: int
    scopes: tuple[str, ...]  # "all" and/or the channel
    rules: tuple  # (scope index 1-based, limit, window seconds, reason)

    @property
    def horizon(self) -> int:
        return max(r[2] for r in self.rules)

    def keys(self, user_id: str) -> list[str]:
        return [f"{PREFIX}:{scope}:{user_id}" for scope in self.scopes]

    def member(self, recipient_id: int) -> str:
        return f"{self.campaign_id}:{recipient_id}"


def for_campaign(campaign) -> Caps | None:
    """None when no cap applies: no rules, a test send, or a campaign (or one-call send) exempt."""
    if not campaign.frequency_cap or campaign.kind == "test":
        return None
    from dashboard.services import workspace

    rules = [r for r in workspace.frequency_caps() if r.applies_to(campaign.channel)]
    if not rules:
        return None
    scopes = tuple(dict.fromkeys(r.channel for r in rules))
    return Caps(campaign.id, scopes,
                tuple((scopes.index(r.channel) + 1, r.limit, r.seconds, r.reason()) for r in rules))


def _runner():
    return get_redis().register_script(_SCRIPT)


def reserve(caps: Caps | None, items: list[tuple[int, str]]) -> dict[int, str]:
    """(recipient id, userId) -> {recipient id: reason} for those over a cap; the others are
    counted (reserved) now, atomically across workers."""
    if caps is None or not items:
        return {}
    keys: list[str] = []
    members: list[str] = []
    for rid, user_id in items:
        keys.extend(caps.keys(user_id))
        members.append(caps.member(rid))
    args: list = [len(caps.scopes), len(caps.rules)]
    for scope, limit, seconds, _ in caps.rules:
        args += [scope, limit, seconds]
    args.append(caps.horizon)
    flat = _runner()(keys=keys, args=args + members)
    return {items[int(flat[i]) - 1][0]: caps.rules[int(flat[i + 1]) - 1][3] for i in range(0, len(flat), 2)}


def release(caps: Caps | None, items: Iterable[tuple[int, str]]) -> None:
    """Messages reserved but not delivered (failed, to be retried, not sent) stop counting."""
    items = list(items)
    if caps is None or not items:
        return
    try:
        pipe = get_redis().pipeline(transaction=False)
        for rid, user_id in items:
            for key in caps.keys(user_id):
                pipe.zrem(key, caps.member(rid))
        pipe.execute()
    except Exception as err:  # noqa: BLE001 - the cap then over-counts; never fail a delivery for it
        log.warning("could not release frequency-cap reservations: %s", err)
