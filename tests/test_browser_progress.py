"""Headless Chromium with a real worker and a real webhook receiver: a 30,000-recipient send at
1,000/s shows a rate above 0 and a sent count that moves, engagement that follows it and a flash
that says what is true once it finished; a cancelled send's bar adds up to its counts, and
"Copy failed recipients to a new draft" links the two campaigns both ways."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from dashboard.services import campaigns, channel_settings, recipients
from dashboard.services.actor import Actor
from tests.engine import start_worker, stop_worker
from tests.sinks import HttpSink
from tests.test_api_campaigns import make_template
from tests.test_browser import SHOTS, _sign_in

ACTOR = Actor.system("test")
RATE_RE = re.compile(r"^([\d,]+(?:\.\d)?) msg/s$")
SNAPSHOT = """() => Object.fromEntries(["status-badge", "count-sent", "eng-delivered", "progress-rate",
  "progress-percent", "progress-eta", "progress-elapsed"].map(id => {
    const el = document.querySelector(`[data-testid="${id}"]`);
    return [id, el ? el.innerText.trim() : null];
  }))"""


@pytest.fixture
def sink():
    server = HttpSink()
    channel_settings.update("webhook", {"rateLimit": 1000, "settings": {"url": server.url, "timeoutSeconds": 5}},
                            ACTOR)
    yield server
    server.close()


@pytest.fixture
def worker(app, sink):
    proc = start_worker(app)
    yield proc
    stop_worker(proc)


def _webhook_campaign(n: int, name: str) -> int:
    make_template()
    c = campaigns.create({"name": name, "templateId": "promo", "channel": "webhook",
                          "variables": {"offer": "15% off"}}, ACTOR)
    for start in range(0, n, 10_000):
        recipients.add_manual(c.id, [f"user-{i}" for i in range(start, min(n, start + 10_000))], None, ACTOR)
    return c.id


def _confirmed_click(page, button) -> None:
    """Click a button whose form asks first: accept the app's confirmation (a native confirm(),
    or a <dialog> with its confirm button)."""
    page.once("dialog", lambda d: d.accept())
    button.click()
    dialog = page.locator("dialog[open]")
    try:
        dialog.wait_for(state="visible", timeout=1500)
    except Exception:
        return  # a native confirm(), already accepted
    ok = dialog.locator("[data-confirm-ok]")
    if ok.count():
        ok.click()
        return
    dismiss = re.compile(r"^\s*(Cancel|Close|Go back|Keep.*|No.*)\s*$", re.I)
    dialog.get_by_role("button").filter(has_not_text=dismiss).last.click()


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def test_a_30000_recipient_webhook_send_moves_live(page, live_server, make_account, sink, worker):
    cid = _webhook_campaign(30_000, "Flash sale webhook")
    _sign_in(page, live_server, make_account("marketer").email)
    page.goto(f"{live_server}/campaigns/{cid}")
    _confirmed_click(page, page.locator("#review").get_by_role("button", name="Send now"))
    badge = page.get_by_test_id("status-badge")
    expect(badge).to_have_text("sending", timeout=15_000)
    expect(page.locator(".flash")).to_have_text("Sending to 30,000 recipients.")

    sent_seen: list[int] = []
    delivered_seen: set[int] = set()
    rates: list[float] = []
    shot = False
    deadline = time.monotonic() + 480  # 30 s at 1,000/s; slower on a busy machine
    while time.monotonic() < deadline:
        now = page.evaluate(SNAPSHOT)  # one reading of the page as it is at this instant
        if now["status-badge"] != "sending":
            break
        sent = _int(now["count-sent"])
        delivered_seen.add(_int(now["eng-delivered"]))
        if not sent_seen or sent != sent_seen[-1]:
            sent_seen.append(sent)
        if 0 < sent < 30_000:
            match = RATE_RE.match(now["progress-rate"] or "")
            assert match and float(match.group(1).replace(",", "")) > 0, \
                f"rate reads {now['progress-rate']!r} at {sent:,} sent"
            rates.append(float(match.group(1).replace(",", "")))
            assert now["progress-percent"].endswith("%") and now["progress-eta"], now
            assert re.fullmatch(r"\d+ (s|min)( \d+ s)?", now["progress-elapsed"]), now
        if not shot and 8_000 < sent < 22_000:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "campaign-sending-live.png"), full_page=True)
            shot = True
        time.sleep(0.1)
    expect(badge).to_have_text("sent", timeout=60_000)
    assert len(sent_seen) >= 11, f"the sent count moved only {len(sent_seen) - 1} times: {sent_seen}"
    assert sent_seen == sorted(sent_seen), sent_seen
    assert rates and max(rates) > 100, rates
    assert any(0 < d < 30_000 for d in delivered_seen), f"engagement did not move during the send: {delivered_seen}"
    expect(page.get_by_test_id("count-sent")).to_have_text("30,000")
    expect(page.get_by_test_id("eng-delivered")).to_have_text("30,000")
    # The send flash said what was true then; now the page says what is true now.
    expect(page.locator(".flash")).to_have_text("Finished: sent to all 30,000 recipients.")
    expect(page.get_by_text("Sending to 30,000 recipients.")).to_have_count(0)
    expect(page.get_by_test_id("progress-percent")).to_have_text("100% sent")
    page.screenshot(path=str(SHOTS / "campaign-sent-after-live.png"))
    assert len(sink.requests) >= 30_000


def test_a_cancelled_send_draws_its_true_proportions_and_its_retry_links_back(
        page, live_server, make_account, sink, worker):
    for i in range(0, 300, 3):  # one in three of the first 300 (the first slice's) is refused for good
        sink.plan[f"user-{i}"] = [400]
    cid = _webhook_campaign(20_000, "Holiday teaser")
    _sign_in(page, live_server, make_account("marketer").email)
    page.goto(f"{live_server}/campaigns/{cid}")
    _confirmed_click(page, page.locator("#review").get_by_role("button", name="Send now"))
    sent, failed = page.get_by_test_id("count-sent"), page.get_by_test_id("count-failed")
    expect(page.get_by_test_id("status-badge")).to_have_text("sending", timeout=15_000)
    deadline = time.monotonic() + 120
    while (_int(sent.inner_text()) < 3_000 or _int(failed.inner_text()) < 100) and time.monotonic() < deadline:
        time.sleep(0.2)
    _confirmed_click(page, page.get_by_role("button", name="Cancel campaign"))
    badge = page.get_by_test_id("status-badge")
    expect(badge).to_have_text(re.compile(r"^cancelled · [\d,]+ sent$"), timeout=30_000)
    page.wait_for_timeout(1500)  # a chunk that was mid-step records what it sent
    page.reload()

    counts = {k: _int(page.get_by_test_id(f"count-{k}").inner_text())
              for k in ("total", "pending", "sent", "failed", "skipped")}
    assert counts["total"] == 20_000 and counts["pending"] == 0 and counts["failed"] == 100, counts
    assert 0 < counts["sent"] < 20_000 and counts["skipped"] > 0, counts
    assert badge.inner_text() == f"cancelled · {counts['sent']:,} sent"
    bar = page.get_by_test_id("progress-bar")
    box = bar.bounding_box()
    segments = bar.locator("rect.seg")
    seen = {}
    for i in range(segments.count()):
        rect = segments.nth(i)
        kind, count = rect.get_attribute("data-kind"), int(rect.get_attribute("data-count"))
        seen[kind] = count
        width = rect.bounding_box()["width"]
        assert abs(width - box["width"] * count / 20_000) < 2, (kind, width, box["width"], count)
    assert seen == {"sent": counts["sent"], "failed": 100, "skipped": counts["skipped"]}
    assert sum(seen.values()) == counts["total"]
    assert f"{counts['sent']:,} sent, 100 failed, {counts['skipped']:,} skipped" in bar.get_attribute("aria-label")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "campaign-cancelled.png"), full_page=True)

    # Retry: says what it does, asks first, and links both ways.
    copy = page.get_by_role("button", name="Copy failed recipients to a new draft")
    expect(copy.locator("xpath=ancestor::form[1]")).to_have_attribute(
        "data-confirm", re.compile(r"Copy the 100 failed recipients of “Holiday teaser” to a new draft"))
    _confirmed_click(page, copy)
    expect(page.get_by_test_id("status-badge")).to_have_text("draft")
    expect(page.get_by_test_id("count-total")).to_have_text("100")
    back = page.get_by_test_id("retry-of")
    expect(back).to_have_text(f"Copied from the failed recipients of #{cid} “Holiday teaser”")
    draft_url = page.url
    back.get_by_role("link").click()
    expect(page.get_by_test_id("retried-in")).to_contain_text("Retried in #")
    expect(page.get_by_role("button", name="Copy failed recipients to a new draft")).to_have_count(0)
    page.get_by_test_id("retried-in").get_by_role("link").click()
    assert page.url == draft_url
