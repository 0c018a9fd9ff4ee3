"""Counters as an invariant: every change to recipient rows moves the campaign's counters by
the rows that statement actually changed, in the same transaction, so
pending + sent + failed + skipped == total and none is negative at every moment."""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, CampaignStatus, Recipient, RecipientStatus

log = logging.getLogger(__name__)
RATE_WINDOW = 10  # seconds: the rate is averaged over at most this many
STALL_SECONDS = 5  # no send for this long: show the last known rate as stalled
T = TypeVar("T")
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def retrying(work: Callable[[], T], attempts: int = 4) -> T:
    """Run a transaction, again from the start if the database aborted it for a deadlock."""
    for attempt in range(attempts):
        try:
            return work()
        except DBAPIError as err:
            db.session.rollback()
            code = getattr(err.orig, "sqlstate", None) or getattr(getattr(err.orig, "diag", None), "sqlstate", None)
            locked = "database is locked" in str(err.orig)
            if (code not in _RETRYABLE_SQLSTATES and not locked) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _ids_update(ids, *where, **values):
    return (update(Recipient).where(Recipient.id.in_(ids), *where).values(**values)
            .execution_options(synchronize_session=False))


def mark_sent(ids: list[int], now: datetime) -> tuple[int, int]:
    """pending -> sent; and skipped -> sent for messages a channel accepted after a cancel (the
    truth wins). Returns (from pending, from skipped)."""
    if not ids:
        return 0, 0
    values = dict(status=RecipientStatus.SENT, sent_at=now, updated_at=now, last_error=None,
                  attempts=Recipient.attempts + 1)
    from_pending = db.session.execute(_ids_update(ids, Recipient.status == RecipientStatus.PENDING,
                                                  **values)).rowcount
    from_skipped = 0
    if from_pending < len(ids):
        from_skipped = db.session.execute(_ids_update(ids, Recipient.status == RecipientStatus.SKIPPED,
                                                      **values)).rowcount
    return from_pending, from_skipped


def _by_reason(pairs: list[tuple[int, str]], default: str) -> dict[str, list[int]]:
    by_reason: dict[str, list[int]] = defaultdict(list)
    for rid, reason in pairs:
        by_reason[(reason or default)[:1000]].append(rid)
    return by_reason


def _mark(pairs: list[tuple[int, str]], status: str, default: str, from_status: str, **values) -> int:
    """Rows in from_status -> status with their reason; one statement per distinct reason."""
    return sum(db.session.execute(_ids_update(ids, Recipient.status == from_status, status=status, last_error=reason,
                                              **values)).rowcount
               for reason, ids in _by_reason(pairs, default).items())


def mark_failed(failures: list[tuple[int, str]], now: datetime, *, from_status: str = RecipientStatus.PENDING,
                count_attempt: bool = True) -> int:
    """Rows in from_status -> failed with their reason."""
    values: dict = dict(updated_at=now)
    if count_attempt:
        values["attempts"] = Recipient.attempts + 1
    if from_status == RecipientStatus.SENT:  # claimed in this transaction, then refused
        values["sent_at"] = None
    return _mark(failures, RecipientStatus.FAILED, "failed", from_status, **values)


def mark_skipped(skips: list[tuple[int, str]], now: datetime, *, from_status: str = RecipientStatus.PENDING) -> int:
    """Rows in from_status -> skipped with their reason (a frequency cap)."""
    values: dict = dict(updated_at=now)
    if from_status == RecipientStatus.SENT:  # claimed in this transaction, then held back
        values |= dict(sent_at=None, attempts=Recipient.attempts - 1)
    return _mark(skips, RecipientStatus.SKIPPED, "skipped", from_status, **values)


def note_retries(retries: list[tuple[int, str]], now: datetime) -> None:
    """Transient failures: the row stays pending with its attempt and last error."""
    for reason, ids in _by_reason(retries, "transient failure").items():
        db.session.execute(_ids_update(ids, Recipient.status == RecipientStatus.PENDING, last_error=reason,
                                       attempts=Recipient.attempts + 1, updated_at=now))


def move(campaign_id: int, now: datetime, *, pending: int = 0, sent: int = 0, failed: int = 0,
         skipped: int = 0) -> tuple[str, int]:
    """Apply counter deltas (from rowcounts) in the caller's transaction; returns (status, pending)."""
    row = db.session.execute(
        update(Campaign).where(Campaign.id == campaign_id)
        .values(pending=Campaign.pending + pending, sent=Campaign.sent + sent, failed=Campaign.failed + failed,
                skipped=Campaign.skipped + skipped, progress_at=now)
        .returning(Campaign.status, Campaign.pending).execution_options(synchronize_session=False)).one()
    return row.status, row.pending


def status_of(campaign_id: int) -> str:
    """The campaign's status now (its own short transaction)."""
    status = db.session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    db.session.commit()
    return status


def record_rate(campaign_id: int, n: int) -> None:
    """Per-second delivery buckets in Redis; progress display only, so a Redis blip is ignored."""
    if n <= 0:
        return
    key = f"herald:rate:{campaign_id}"
    try:
        pipe = get_redis().pipeline()
        pipe.hincrby(key, str(int(time.time())), n)
        pipe.expire(key, 120)
        pipe.execute()
    except Exception as err:  # noqa: BLE001
        log.warning("could not record the send rate: %s", err)


@dataclass(frozen=True)
class Rate:
    """The live send rate: messages per second over the seconds that had sends, and the ETA."""
    per_second: float = 0.0
    eta: int | None = None
    stalled: bool = False  # nothing sent for STALL_SECONDS: per_second is the last known rate
    idle_seconds: int = 0  # seconds since the last recorded send (when stalled)


def measure(buckets: dict[int, int], now: float, pending: int) -> Rate:
    """Rate over a sliding window: the last RATE_WINDOW seconds, or the time since the first
    send if shorter, ending now — or, when nothing was sent for STALL_SECONDS, ending at the
    last send (that last known rate, marked stalled). Counted buckets cover whole seconds from
    floor(window start) to now, so the divisor is exactly the span they cover."""
    sent = {k: n for k, n in buckets.items() if n > 0 and k <= now}
    if not sent:
        return Rate()
    last = max(sent)
    idle = now - (last + 1)
    stalled = idle > STALL_SECONDS
    end = last + 1 if stalled else now
    lo = math.floor(max(end - RATE_WINDOW, min(sent)))
    total = sum(n for k, n in sent.items() if lo <= k < end)
    rate = total / max(end - lo, 1.0)
    eta = math.ceil(pending / rate) if rate > 0 and not stalled else None
    return Rate(round(rate, 1), eta, stalled, max(int(idle), 0) if stalled else 0)


def live_rate(campaign: Campaign) -> Rate:
    """The rate and ETA of a sending campaign from its per-second buckets in Redis."""
    if campaign.status != CampaignStatus.SENDING:
        return Rate()
    try:
        raw = get_redis().hgetall(f"herald:rate:{campaign.id}")
    except Exception:  # progress display must not break when Redis blips
        return Rate()
    return measure({int(k): int(v) for k, v in raw.items()}, time.time(), campaign.pending)


def rate_and_eta(campaign: Campaign) -> tuple[float, int | None]:
    """(messages per second, seconds left) for the API; see measure()."""
    rate = live_rate(campaign)
    return rate.per_second, rate.eta


def fail_range(campaign_id: int, lo: int, hi: int, reason: str, now: datetime) -> int:
    """Every still-pending recipient of a chunk -> failed (a job that kept failing)."""
    return db.session.execute(
        update(Recipient).where(Recipient.campaign_id == campaign_id, Recipient.id.between(lo, hi),
                                Recipient.status == RecipientStatus.PENDING)
        .values(status=RecipientStatus.FAILED, last_error=reason[:1000], updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
