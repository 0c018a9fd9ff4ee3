"""Benchmark parts for the external channels (webhook, email) against the local sinks of
scripts/bench_sinks.py: throughput, the shipped default rate limits, and duplicates after
`kill -9` of the worker mid-send. One part per process; prints one JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter

from sqlalchemy import func, select

from dashboard import create_app
from dashboard.extensions import db
from dashboard.models import Campaign, Recipient
from dashboard.services import campaigns, channel_settings, lifecycle, templates
from scripts.bench_parts import ACTOR, add_recipients, setup, wait_final
from scripts.bench_procs import Children, free_port, kill, main

# A killed chunk is recovered within ~20 s: a sweep every second, a job silent for 3 s is lost,
# and its lease (slice + channel timeout + 10 s) is short with 2 s slices.
RECOVERY_ENV = {"HERALD_SWEEP_SECONDS": "1", "HERALD_STALL_SECONDS": "3", "HERALD_SLICE_SECONDS": "2",
                "HERALD_WORKER_TTL": "20"}
AT_LIMIT = {"webhook": 2_000, "email": 1_200}  # 10-12 s at the shipped 200/s and 100/s
KILL_COUNT = 2_000
KILL_AT = (0.3, 0.7)


class Sink:
    """A sink process of scripts/bench_sinks.py, and the deliveries it has seen."""

    def __init__(self, children: Children, kind: str):
        self.kind, self.port = kind, free_port()
        self.stats_port = self.port if kind == "webhook" else free_port()
        args = ["http", str(self.port)] if kind == "webhook" else ["smtp", str(self.port), str(self.stats_port)]
        proc = children.spawn([sys.executable, "-m", "scripts.bench_sinks", *args], stdout=subprocess.PIPE, text=True)
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"the {kind} sink did not start")

    def settings(self) -> dict:
        if self.kind == "webhook":
            return {"url": f"http://127.0.0.1:{self.port}/hook", "secret": "bench"}
        return {"smtpUrl": f"smtp://127.0.0.1:{self.port}", "sender": "bench@herald.test"}

    def deliveries(self) -> list[tuple[float, str]]:
        """(time, recipient) per delivery: the webhook's userId, the email's RCPT TO."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats", timeout=10) as response:
            return [(at, who) for at, who in json.load(response)]

    def wait_for(self, recipients: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len({who for _, who in self.deliveries()}) < recipients:
            if time.monotonic() > deadline:
                raise SystemExit(f"the {self.kind} sink saw fewer than {recipients} recipients in {timeout:g} s")
            time.sleep(0.1)


def prepare(app, kind: str, sink: Sink, count: int, rate: float | None = None) -> int:
    """A draft campaign of `count` recipients on `kind`, sending to the sink; without `rate`
    the channel keeps its shipped default limit."""
    setup(app)
    templates.create({"name": "Mail", "templateId": "mail",
                      "channels": {"email": {"subject": "Hi {{ firstName }}", "text": "{{ offer }} for you"},
                                   "in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}"}},
                      "variableSchema": [{"key": "firstName", "type": "string"},
                                         {"key": "offer", "type": "string"}]}, ACTOR)
    templates.transition("mail", "approve", ACTOR)
    channel_settings.update(kind, {"settings": sink.settings()} | ({"rateLimit": rate} if rate else {}), ACTOR)
    campaign = campaigns.create({"name": kind, "templateId": "mail", "channel": kind}, ACTOR)
    add_recipients(campaign.id, count, email=True)
    return campaign.id


def default_rate(kind: str) -> float:
    """The channel's limit, checked to be the shipped default."""
    rate = channel_settings.get(kind).rate_limit
    if rate != channel_settings.DEFAULT_RATE[kind]:
        raise SystemExit(f"the {kind} limit is {rate:g}/s, not the shipped {channel_settings.DEFAULT_RATE[kind]:g}/s")
    return rate


def send_and_wait(children: Children, campaign_id: int, workers: int) -> tuple[Campaign, float]:
    for _ in range(workers):
        children.worker()
    time.sleep(2.0)  # let the workers boot and subscribe
    start = time.perf_counter()
    lifecycle.send(campaign_id, None, ACTOR)
    campaign = wait_final(campaign_id, 600)
    return campaign, time.perf_counter() - start


def check_sent(campaign: Campaign, count: int) -> None:
    if (campaign.status, campaign.sent) != ("sent", count):
        error = db.session.scalar(select(Recipient.last_error).where(Recipient.campaign_id == campaign.id,
                                                                     Recipient.status == "failed").limit(1))
        raise SystemExit(f"{campaign.channel}: {campaign.status}, sent {campaign.sent} of {count}, "
                         f"failed {campaign.failed} ({error})")


def sustained(stamps: list[float]) -> float:
    """Deliveries per second from the first delivery to the last."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def busiest_second(stamps: list[float]) -> int:
    busiest, j = 0, 0
    for i, at in enumerate(stamps):
        while stamps[j] < at - 1.0:
            j += 1
        busiest = max(busiest, i - j + 1)
    return busiest


def duplicates(deliveries: list[tuple[float, str]]) -> int:
    """Deliveries beyond the first, per recipient."""
    return sum(n - 1 for n in Counter(who for _, who in deliveries).values())


def part_throughput(kind: str, workers: int = 1, rate: float = 100_000.0, count: int = 10_000) -> dict:
    """Send `count` recipients over webhook or email to a local sink with `workers` workers."""
    app = create_app()
    with app.app_context(), Children() as children:
        sink = Sink(children, kind)
        campaign, elapsed = send_and_wait(children, prepare(app, kind, sink, count, rate), workers)
        check_sent(campaign, count)
        stamps = sorted(at for at, _ in sink.deliveries())
    return {"per_s": count / elapsed, "elapsed_s": elapsed, "busiest_1s": busiest_second(stamps)}


def part_at_limit(kind: str) -> dict:
    """The shipped default rate limit (no rateLimit set), 1 worker: the sink's sustained rate."""
    count = AT_LIMIT[kind]
    app = create_app()
    with app.app_context(), Children() as children:
        sink = Sink(children, kind)
        campaign_id = prepare(app, kind, sink, count)
        rate = default_rate(kind)
        campaign, elapsed = send_and_wait(children, campaign_id, 1)
        check_sent(campaign, count)
        deliveries = sink.deliveries()
    stamps = sorted(at for at, _ in deliveries)
    per_s = sustained(stamps)
    return {"rate": rate, "count": count, "per_s": per_s, "pct": per_s / rate * 100, "span_s": stamps[-1] - stamps[0],
            "elapsed_s": elapsed, "duplicates": duplicates(deliveries)}


def counters(campaign: Campaign) -> dict:
    """The campaign's counters, its recipient rows, and whether they add up."""
    rows = db.session.scalar(select(func.count()).select_from(Recipient).where(Recipient.campaign_id == campaign.id))
    values = {"status": campaign.status, "total": campaign.total, "pending": campaign.pending,
              "sent": campaign.sent, "failed": campaign.failed, "skipped": campaign.skipped, "rows": rows}
    parts = [campaign.pending, campaign.sent, campaign.failed, campaign.skipped]
    values["counters_ok"] = (min(parts) >= 0 and sum(parts) == campaign.total == rows
                             and campaign.sent == campaign.total and campaign.status == "sent")
    return values


def part_kill(kind: str) -> dict:
    """kill -9 of the worker's process group at ~30% and ~70% of a send at the default limit,
    a new worker each time; the duplicates the sink saw, and the campaign's counters."""
    os.environ.update(RECOVERY_ENV)  # for the workers and this process's app alike
    app = create_app()
    with app.app_context(), Children() as children:
        sink = Sink(children, kind)
        campaign_id = prepare(app, kind, sink, KILL_COUNT)
        rate = default_rate(kind)
        worker = children.worker()
        time.sleep(2.0)
        start = time.perf_counter()
        lifecycle.send(campaign_id, None, ACTOR)
        for share in KILL_AT:
            sink.wait_for(int(KILL_COUNT * share), 300)
            kill(worker)
            worker = children.worker()
        campaign = wait_final(campaign_id, 300)
        elapsed = time.perf_counter() - start
        deliveries = sink.deliveries()
        result = counters(campaign)
    return {**result, "rate": rate, "step": max(1, int(rate / 20)), "kills": len(KILL_AT), "elapsed_s": elapsed,
            "duplicates": duplicates(deliveries), "missing": KILL_COUNT - len({who for _, who in deliveries})}


if __name__ == "__main__":
    main({"webhook": lambda: part_throughput("webhook"), "email": lambda: part_throughput("email"),
          "throttle": lambda: part_throughput("webhook", workers=2, rate=200.0, count=2000),
          "limit-webhook": lambda: part_at_limit("webhook"), "limit-email": lambda: part_at_limit("email"),
          "kill-webhook": lambda: part_kill("webhook"), "kill-email": lambda: part_kill("email")})
