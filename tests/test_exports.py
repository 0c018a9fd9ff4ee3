"""The recipients export, downloaded from a real gunicorn (the test client keeps the request
context alive and hid a crash in the streamed body)."""

from __future__ import annotations

import csv
import io

import httpx

from dashboard.services.actor import Actor
from tests.conftest import PASSWORD, csrf_from
from tests.servers import gunicorn
from tests.test_sending import make_campaign

ACTOR = Actor.system("test")
N = 12_000  # more than one batch of the streamed query


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_export_streams_every_recipient_through_gunicorn(app, api_key, make_account):
    campaign = make_campaign(N)
    key = api_key("support")
    account = make_account("support")
    with gunicorn(app) as base:
        api = httpx.get(f"{base}/api/v1/campaigns/{campaign.id}/recipients/export",
                        headers={"Authorization": f"Bearer {key}"}, timeout=60)
        with httpx.Client(base_url=base, timeout=60) as browser:
            token = csrf_from(browser.get("/login").text)
            assert browser.post("/login", data={"email": account.email, "password": PASSWORD,
                                                "csrf_token": token}).status_code == 302
            page = browser.get(f"/campaigns/{campaign.id}/recipients.csv")
    for response in (api, page):
        assert response.status_code == 200, response.text[:500]
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = _rows(response.text)
        assert rows[0][:3] == ["userId", "email", "status"]
        assert len(rows) == N + 1
        assert {r[0] for r in rows[1:]} == {f"u{i}" for i in range(N)}
