"""The automatic halt: each step's outcomes go into a short Redis list per campaign; when more
than the campaign's percent of its last `window` outcomes failed (judged once at least
min(window, MIN_SAMPLE) are in), the campaign pauses itself (audited as "system"). Resume
clears the window, so a resumed send is judged on what it does next. A Redis blip skips the
check (the 50% failure threshold of SPEC §3 still applies in the database)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from dashboard.extensions import db, get_redis

log = logging.getLogger(__name__)
MIN_SAMPLE = 50
KEEP_SECONDS = 8 * 24 * 3600  # a paused campaign may sit for days


def _key(campaign_id: int) -> str:
    return f"herald:halt:{campaign_id}"


def judge(entries: list[tuple[int, int]], window: int) -> tuple[int, int]:
    """(processed, failed) over the newest `window` outcomes, newest step first; a step that
    straddles the window's edge counts in proportion."""
    processed = failed = 0
    for sent, fails in entries:
        size = sent + fails
        if size <= 0:
            continue
        take = min(size, window - processed)
        failed += round(fails * take / size)
        processed += take
        if processed >= window:
            break
    return processed, failed


def observe(campaign_id: int, percent: float, window: int, sent: int, failed: int) -> str | None:
    """Record a step; return the reason when the rule is broken (None otherwise)."""
    if sent + failed <= 0:
        return None
    key = _key(campaign_id)
    try:
        pipe = get_redis().pipeline()
        pipe.lpush(key, f"{sent}:{failed}")
        pipe.ltrim(key, 0, window - 1)  # every entry holds at least one outcome
        pipe.expire(key, KEEP_SECONDS)
        pipe.lrange(key, 0, window - 1)
        raw = pipe.execute()[-1]
    except RedisError as err:
        log.warning("automatic halt check skipped for campaign %s: %s", campaign_id, err)
        return None
    entries = []
    for item in raw:
        s, _, f = (item.decode() if isinstance(item, bytes) else item).partition(":")
        entries.append((int(s), int(f)))
    processed, fails = judge(entries, window)
    if processed < min(window, MIN_SAMPLE) or fails * 100 <= percent * processed:
        return None
    return (f"{fails:,} of the last {processed:,} deliveries failed ({fails * 100 / processed:.1f}%), "
            f"above the {percent:g}% halt rule")


def check(work, sent: int, failed: int, also: Callable[[], None] | None = None) -> bool:
    """After a recorded step: True when the campaign was halted (by this call or already).
    `also` runs in the halt's transaction (an external run releases its lease there)."""
    if work.halt is None:
        return False
    reason = observe(work.campaign_id, work.halt[0], work.halt[1], sent, failed)
    if reason is None:
        return False
    from dashboard.services import control

    control.halt(work.campaign_id, reason)
    if also is not None:
        also()
    db.session.commit()
    log.warning("campaign %s halted automatically: %s", work.campaign_id, reason)
    return True


def reset(campaign_id: int) -> None:
    try:
        get_redis().delete(_key(campaign_id))
    except RedisError as err:
        log.warning("could not clear the halt window of campaign %s: %s", campaign_id, err)
