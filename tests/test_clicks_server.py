"""Click tracking end to end with real processes (PostgreSQL): gunicorn serves the app, an RQ
worker (the Procfile's command) sends an email campaign to a real SMTP server, and the tracked
link read from the delivered email is followed against gunicorn: a 302 to the original URL,
counted once after two follows; a tampered link is a 400 page; the engagement CSV downloads
through gunicorn."""

from __future__ import annotations

import csv
import email
import io
import re
import time

import httpx
import pytest
from sqlalchemy import update

from dashboard.extensions import db
from dashboard.models import Campaign, Recipient
from dashboard.services import campaigns, lifecycle, recipients
from tests.conftest import TEST_DB
from tests.engine import start_worker, stop_worker
from tests.servers import gunicorn
from tests.test_channels import ACTOR, smtp  # noqa: F401  (the SMTP fixture)
from tests.test_clicks import parts, rich_template

pytestmark = pytest.mark.skipif(TEST_DB != "postgresql", reason="real processes on PostgreSQL")


def wait_for(campaign_id: int, status: str, timeout: float = 60) -> Campaign:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        c = db.session.get(Campaign, campaign_id)
        if c.status == status:
            return c
        time.sleep(0.2)
    raise AssertionError(f"campaign {campaign_id} is {c.status}, not {status}")


def test_tracked_link_through_gunicorn_and_a_real_worker(app, smtp, api_key):  # noqa: F811
    key = api_key("support")
    rich_template()
    c = campaigns.create({"name": "Server links", "templateId": "linky", "channel": "email"}, ACTOR)
    recipients.add_manual(c.id, ["ann", "bob", "cat"], None, ACTOR)
    db.session.execute(update(Recipient).where(Recipient.campaign_id == c.id)
                       .values(email=Recipient.user_id + "@x.test"))
    db.session.commit()
    with gunicorn(app) as base:
        worker = start_worker(app, HERALD_PUBLIC_URL=base)
        try:
            lifecycle.send(c.id, None, ACTOR)
            assert wait_for(c.id, "sent").sent == 3
        finally:
            stop_worker(worker)
        mail = next(email.message_from_string(m["data"]) for m in smtp.messages if m["to"] == ["ann@x.test"])
        text, html = parts(mail)
        tracked = re.findall(re.escape(base) + r"/c/[A-Za-z0-9_.\-]*[A-Za-z0-9_\-]", text)
        assert len(tracked) == 2 and "shop.example" not in text + html
        shop = tracked[0]
        with httpx.Client(timeout=30) as http:
            for _ in range(2):
                response = http.get(shop, follow_redirects=False)
                assert response.status_code == 302
                assert response.headers["location"] == "https://shop.example/sale?a=1&b=2"
            tampered = http.get(shop[:-3] + ("xyz" if not shop.endswith("xyz") else "abc"), follow_redirects=False)
            assert tampered.status_code == 400 and "location" not in tampered.headers
            assert "This link is broken" in tampered.text
            headers = {"Authorization": f"Bearer {key}"}
            report = http.get(f"{base}/api/v1/campaigns/{c.id}/report", headers=headers).json()
            assert report["totals"]["clicked"] == 1 and report["totals"]["delivered"] == 3
            assert report["links"] == [{"url": "https://shop.example/sale?a=1&b=2", "clickers": 1, "share": 100.0}]
            assert sum(p["clicked"] for p in report["series"]["points"]) == 1
            with http.stream("GET", f"{base}/api/v1/campaigns/{c.id}/engagement.csv", headers=headers) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/csv")
                body = "".join(stream.iter_text())
    rows = {r["userId"]: r for r in csv.DictReader(io.StringIO(body))}
    assert list(rows) == ["ann", "bob", "cat"]
    assert rows["ann"]["clickedLinks"] == "https://shop.example/sale?a=1&b=2" and rows["ann"]["clickedAt"]
    assert rows["bob"]["status"] == "sent" and rows["bob"]["deliveredAt"] and rows["bob"]["clickedLinks"] == ""
