"""Live progress and outcomes without a browser: the sliding-window rate, the outcome badges,
the flash that replaces a stale one, the bar's segments, engagement that polls while sending,
and the retry draft linked both ways (pages and API)."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import update

from dashboard import queries
from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, Recipient
from dashboard.models.base import utcnow
from dashboard.services import campaigns, lifecycle, recipients
from dashboard.services.actor import Actor
from dashboard.services.delivery import progress
from dashboard.services.delivery.progress import measure
from dashboard.web import progress_view
from tests.test_api_campaigns import make_template

ACTOR = Actor.system("test")
HX = {"HX-Request": "true"}


# -- the rate ----------------------------------------------------------------------------------

def test_the_rate_is_above_zero_from_the_first_bucket():
    now = 1000.3
    rate = measure({1000: 120}, now, pending=29_880)  # 0.3 s into the send
    assert rate.per_second == 120 and not rate.stalled and rate.eta == 249
    two = measure({999: 900, 1000: 300}, now, pending=1000)  # 1.3 s in: 1,200 over 1.3 s
    assert two.per_second == pytest.approx(923.1, abs=0.1)


def test_the_window_is_ten_seconds_at_most_and_covers_the_current_second():
    buckets = {k: 5000 for k in range(900, 980)} | {k: 1000 for k in range(980, 1001)}
    rate = measure(buckets, 1000.5, pending=10_000)
    # buckets 990..1000 (11 buckets over 10.5 s) - the 5,000/s from long ago is out of the window
    assert rate.per_second == pytest.approx(11_000 / 10.5, abs=0.1)
    assert rate.eta == 10


def test_gaps_inside_the_window_lower_the_rate_but_never_to_zero():
    rate = measure({995: 1000, 996: 1000}, 1000.9, pending=500)  # 4 quiet seconds, not yet stalled
    assert 0 < rate.per_second < 1000 and not rate.stalled


def test_a_send_quiet_for_five_seconds_shows_its_last_rate_as_stalled():
    buckets = {k: 1000 for k in range(980, 990)}
    rate = measure(buckets, 996.5, pending=5000)
    assert rate.stalled and rate.per_second == 1000 and rate.eta is None and rate.idle_seconds == 6
    fact = {f.key: f for f in progress_view.facts(_sending(), rate)}["rate"]
    assert fact.text == "paused? nothing sent for 6 s (was 1,000 msg/s)" and fact.tone == "warn"


def test_no_bucket_yet_reads_starting():
    assert measure({}, 1000.0, pending=10) == progress.Rate()
    facts = {f.key: f.text for f in progress_view.facts(_sending(), progress.Rate())}
    assert facts["rate"] == "starting…" and facts["eta"] == "working it out…"


def test_live_rate_reads_the_redis_buckets_of_a_sending_campaign(app):
    c = _campaign(100)
    lifecycle.send(c.id, None, ACTOR)
    now = int(time.time())
    for k in range(now - 3, now + 1):
        get_redis().hset(f"herald:rate:{c.id}", str(k), 25)
    rate = progress.live_rate(db.session.get(Campaign, c.id))
    assert 20 < rate.per_second <= 100 and rate.eta is not None


def _sending(**counts) -> Campaign:
    c = Campaign(name="x", status="sending", total=30_000, pending=8_000, sent=22_000, failed=0, skipped=0,
                 started_at=utcnow())
    for k, v in counts.items():
        setattr(c, k, v)
    return c


# -- words -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "sent", "failed", "label", "tone"), [
    ("sent", 30_000, 0, "sent", "status-sent"),
    ("sent", 29_800, 200, "sent · 200 failed", "status-sent-partial"),
    ("failed", 300, 2_700, "failed", "status-failed"),
    ("cancelled", 8_000, 0, "cancelled · 8,000 sent", "status-cancelled"),
    ("cancelled", 0, 0, "cancelled", "status-cancelled"),
    ("sending", 10, 0, "sending", "status-sending"),
    ("draft", 0, 0, "draft", "status-draft"),
])
def test_outcome_badges_say_what_happened(status, sent, failed, label, tone):
    outcome = queries.outcome(Campaign(status=status, sent=sent, failed=failed))
    assert (outcome.label, outcome.tone) == (label, tone)


def test_durations_and_percentages():
    assert [progress_view.duration(s) for s in (0, 42, 60, 390, 3600, 3900)] == [
        "0 s", "42 s", "1 min", "6 min 30 s", "1 h", "1 h 5 min"]
    assert progress_view.percent_text(29_999, 30_000) == "99%"  # not 100% until it is
    assert progress_view.percent_text(30_000, 30_000) == "100%"
    assert progress_view.percent_text(12, 30_000) == "0.1%"  # something moved: not 0%


def test_the_bar_is_drawn_at_its_true_proportions():
    c = Campaign(status="cancelled", total=20_000, pending=0, sent=8_000, failed=500, skipped=11_500)
    segments = progress_view.segments(c)
    assert [(s.kind, s.count, s.x, s.width) for s in segments] == [
        ("sent", 8_000, 0, 400), ("failed", 500, 400, 25), ("skipped", 11_500, 425, 575)]
    assert progress_view.bar_label(c) == "8,000 sent, 500 failed, 11,500 skipped of 20,000 recipients"
    half = progress_view.segments(Campaign(status="sending", total=1000, pending=500, sent=500, failed=0, skipped=0))
    assert [(s.kind, s.width) for s in half] == [("sent", 500)]  # the rest is the empty track


# -- pages -------------------------------------------------------------------------------------

def _campaign(n: int, name: str = "Spring sale") -> Campaign:
    make_template()
    c = campaigns.create({"name": name, "templateId": "promo", "variables": {"offer": "5%"}}, ACTOR)
    recipients.add_manual(c.id, [f"u-{i}" for i in range(n)], None, ACTOR)
    return db.session.get(Campaign, c.id)


def _finish(c: Campaign, status: str, sent: int, failed: int = 0, skipped: int = 0) -> None:
    """Put a campaign in a final state with its recipient rows to match."""
    if c.status == "draft":
        lifecycle.send(c.id, None, ACTOR)
    ids = sorted(r for (r,) in db.session.query(Recipient.id).filter(Recipient.campaign_id == c.id))
    for lo, hi, st in ((0, sent, "sent"), (sent, sent + failed, "failed"),
                       (sent + failed, sent + failed + skipped, "skipped")):
        if hi > lo:
            db.session.execute(update(Recipient).where(Recipient.id.in_(ids[lo:hi]))
                               .values(status=st, last_error="HTTP 500" if st == "failed" else None))
    c = db.session.get(Campaign, c.id)
    c.status, c.completed_at = status, utcnow()
    recipients.recount(c)
    db.session.commit()


def test_the_live_status_shows_done_rate_eta_started_and_elapsed(client, logged_in):
    c = _campaign(40)
    lifecycle.send(c.id, None, ACTOR)
    db.session.execute(update(Campaign).where(Campaign.id == c.id).values(pending=10, sent=30))
    db.session.commit()
    now = int(time.time())
    for k in range(now - 2, now + 1):
        get_redis().hset(f"herald:rate:{c.id}", str(k), 10)
    logged_in("support")
    html = client.get(f"/campaigns/{c.id}/_status?shown=sending", headers=HX).get_data(as_text=True)
    assert 'data-testid="progress-percent">75%<' in html
    assert re.search(r'data-testid="progress-rate">\d+(\.\d)? msg/s<', html)
    assert re.search(r'data-testid="progress-eta">about \d+ s<', html)
    assert 'data-testid="progress-started"><time' in html and 'data-testid="progress-elapsed">' in html
    assert 'data-kind="sent" data-count="30"' in html
    assert 'id="flashes"' not in html  # still what the page shows: no flash swapped in


def test_a_page_that_watched_the_send_finish_gets_a_true_flash(client, logged_in):
    c = _campaign(10)
    _finish(c, "sent", 8, failed=2)
    logged_in("support")
    watched = client.get(f"/campaigns/{c.id}/_status?shown=sending", headers=HX)
    html = watched.get_data(as_text=True)
    assert watched.status_code == 286
    assert 'id="flashes"' in html and 'hx-swap-oob="true"' in html
    assert "Finished: 8 sent, 2 failed." in html and "Sending to" not in html
    assert 'data-testid="status-badge">sent · 2 failed<' in html
    # polled by a page that already showed "sent", or loaded without HTMX: no flash
    assert 'id="flashes"' not in client.get(f"/campaigns/{c.id}/_status?shown=sent", headers=HX).get_data(as_text=True)
    assert 'id="flashes"' not in client.get(f"/campaigns/{c.id}/_status?shown=sending").get_data(as_text=True)


def test_flash_words_for_each_state():
    assert queries.state_flash(Campaign(status="sending", total=30_000)) == (
        "success", "Sending to 30,000 recipients.")
    assert queries.state_flash(Campaign(status="sent", sent=30_000, failed=0)) == (
        "success", "Finished: sent to all 30,000 recipients.")
    assert queries.state_flash(Campaign(status="failed", failure_reason="More than 50% of deliveries failed.")) == (
        "error", "The send stopped: More than 50% of deliveries failed.")
    assert queries.state_flash(Campaign(status="cancelled", sent=8_000, skipped=12_000)) == (
        "info", "Cancelled: 8,000 sent, 12,000 skipped.")


def test_a_cancelled_campaign_bar_segments_add_up_to_its_counts(client, logged_in):
    c = _campaign(200)
    _finish(c, "cancelled", 80, failed=5, skipped=115)
    logged_in("support")
    html = client.get(f"/campaigns/{c.id}").get_data(as_text=True)
    found = {k: int(n) for k, n in re.findall(r'data-kind="(\w+)" data-count="(\d+)"', html)}
    assert found == {"sent": 80, "failed": 5, "skipped": 115} and sum(found.values()) == 200
    widths = dict(re.findall(r'data-kind="(\w+)" data-count="\d+" x="[\d.]+" y="0" width="([\d.]+)"', html))
    assert widths == {"sent": "400.0", "failed": "25.0", "skipped": "575.0"}
    assert 'data-testid="status-badge">cancelled · 80 sent<' in html
    assert "<progress" not in html


def test_engagement_polls_while_sending_and_stops_when_final(client, logged_in):
    c = _campaign(10)
    lifecycle.send(c.id, None, ACTOR)
    db.session.execute(update(Campaign).where(Campaign.id == c.id).values(pending=4, sent=6))
    db.session.commit()
    logged_in("support")
    live = client.get(f"/campaigns/{c.id}/_engagement", headers=HX).get_data(as_text=True)
    assert 'hx-trigger="every 3s, campaign-finished from:body"' in live
    assert 'data-testid="eng-delivered">6<' in live
    _finish(db.session.get(Campaign, c.id), "sent", 10)
    done = client.get(f"/campaigns/{c.id}/_engagement", headers=HX).get_data(as_text=True)
    assert "hx-trigger" not in done and 'data-testid="eng-delivered">10<' in done


def test_the_campaigns_list_uses_the_outcome_badge(client, logged_in):
    c = _campaign(10, "Black Friday")
    _finish(c, "sent", 8, failed=2)
    logged_in("support")
    html = client.get("/campaigns").get_data(as_text=True)
    assert '<span class="badge status-sent-partial">sent · 2 failed</span>' in html


# -- retry -------------------------------------------------------------------------------------

def test_retry_is_labelled_confirms_and_links_both_ways(client, logged_in, api_key):
    c = _campaign(10, "Black Friday")
    _finish(c, "sent", 7, failed=3)
    logged_in("marketer")
    page = client.get(f"/campaigns/{c.id}").get_data(as_text=True)
    form = re.search(r'<form[^>]*retry-failed[^>]*>', page, re.S).group(0)
    assert 'data-confirm="Copy the 3 failed recipients of “Black Friday” to a new draft?' in form
    assert "Copy failed recipients to a new draft</button>" in page

    retry = lifecycle.retry_failed(c.id, ACTOR)
    assert retry.retry_of_id == c.id and retry.total == 3
    assert lifecycle.duplicate(c.id, ACTOR).retry_of_id is None  # a duplicate is not a retry
    draft = client.get(f"/campaigns/{retry.id}").get_data(as_text=True)
    assert re.search(rf'Copied from the failed recipients of\s+<a href="/campaigns/{c.id}">#{c.id} “Black Friday”</a>',
                     draft)
    original = client.get(f"/campaigns/{c.id}").get_data(as_text=True)
    assert re.search(rf'Retried in\s+<a href="/campaigns/{retry.id}">#{retry.id} ', original)
    assert "Copy failed recipients to a new draft" not in original

    key = api_key("support")
    body = client.get(f"/api/v1/campaigns/{retry.id}", headers={"Authorization": f"Bearer {key}"}).get_json()
    assert body["retryOfId"] == c.id
    assert client.get(f"/api/v1/campaigns/{c.id}",
                      headers={"Authorization": f"Bearer {key}"}).get_json()["retryOfId"] is None
