"""The time box a chunk job works in, what it knows of its chunk, and how it ended."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from flask import current_app

from dashboard import shutdown
from dashboard.ratelimit import TokenBucket

SHORT_WAIT = 1.0  # seconds: a token wait this short is slept, not handed back to the queue


@dataclass
class Slice:
    """The time box of one job: steps of one bucket grant each, until the deadline. `cap` is the
    campaign's own bucket when it is spread over a window (both must grant)."""

    deadline: float
    bucket: TokenBucket | None
    cap: TokenBucket | None = None
    slept: float = 0.0  # waited for tokens since the caller last looked at the campaign's status

    @property
    def step(self) -> int:
        steps = [b.step for b in (self.bucket, self.cap) if b is not None]
        return min(steps) if steps else 1_000_000

    def take_slept(self) -> float:
        slept, self.slept = self.slept, 0.0
        return slept

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def should_stop(self) -> bool:
        return self.remaining() <= 0 or shutdown.requested()

    def acquire(self, n: int) -> float:
        """0.0 once n tokens are granted; else the seconds until they could be (past this slice).
        A wait of up to SHORT_WAIT is slept even past the deadline (the caller ends the slice after
        that step): handing the chunk back for so short a wait goes through RQ's scheduler, which
        works to the second, and a throttled send (spread: one message per grant) lost most of a
        second at every slice."""
        if n <= 0:
            return 0.0
        for bucket in (self.cap, self.bucket):
            if bucket is None:
                continue
            while True:
                wait = bucket.try_take(n)
                if wait == 0:
                    break
                if wait >= max(self.remaining(), SHORT_WAIT) or shutdown.requested():
                    return max(wait, 0.05)
                time.sleep(wait)
                self.slept += wait
        return 0.0


@dataclass
class Work:
    """What a slice needs to know about its chunk and campaign (plain values: commits expire ORM objects)."""

    chunk_id: int
    lo: int
    hi: int
    campaign_id: int
    urgent: bool
    schema: list
    defaults: dict
    content: dict
    rate: float
    test: bool = False  # a draft's test send: "[Test]" labels, webhooks carry "test": true
    wave: int = 0  # 1: a canary chunk (only the sampled recipients); >= 2: a timed wave
    halt: tuple[float, int] | None = None  # the automatic halt rule (percent, window)
    caps: object = None  # caps.Caps: the frequency caps this campaign's messages count against
    track_clicks: bool = False  # email links through the signed click redirect (services/clicks.py)

    def scope(self):
        """Conditions that select this chunk's recipients beyond its id range (its wave: the
        canary's, or a timed wave's)."""
        from dashboard.models import Recipient

        return (Recipient.wave == self.wave,) if self.wave else ()


@dataclass
class Outcome:
    """How a slice ended: done, more (hand the rest back after `delay`), stopped (status changed)."""

    state: str
    delay: float = 0.0
    sent: int = 0
    failed: int = 0
    pending_left: int | None = None
    notes: dict = field(default_factory=dict)


def backoff(attempt: int, retry_after: float | None = None, jitter: bool = True) -> float:
    base = current_app.config["HERALD_RETRY_BASE_SECONDS"]
    delay = min(base * (2 ** max(attempt - 1, 0)), 300.0)
    if jitter:
        delay *= 1 + random.random() * 0.5
    return max(delay, retry_after or 0.0)
