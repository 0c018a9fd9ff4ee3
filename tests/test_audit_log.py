"""The audit log in plain words: target names with links, readable actions, and filters by
campaign name, account, action and date range."""

import re
from datetime import timedelta

from dashboard.extensions import db
from dashboard.models import AuditEvent, utcnow
from dashboard.services import campaigns, templates
from dashboard.services.actor import Actor
from tests.test_api_campaigns import make_template

SYSTEM = Actor.system("seed")


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def _seed():
    make_template()
    templates.update("promo", {"name": "Promo", "channels": {"in_app": {"title": "Hello", "body": "{{ offer }}"}}},
                     SYSTEM)
    spring = campaigns.create({"name": "Spring sale", "templateId": "promo", "channel": "in_app",
                               "deliveryMode": "batch", "variables": {"offer": "x"}}, SYSTEM)
    autumn = campaigns.create({"name": "Autumn news", "templateId": "promo", "channel": "in_app",
                               "deliveryMode": "batch", "variables": {"offer": "x"}}, SYSTEM)
    return spring.id, autumn.id


def test_names_links_and_plain_actions(client, logged_in):
    logged_in("support")
    spring, _ = _seed()
    response = client.get("/audit")
    html, text = response.get_data(as_text=True), _text(response)
    assert f'href="/campaigns/{spring}">Spring sale</a>' in html
    assert 'href="/templates/promo">Promo</a>' in html
    assert "approved template (version 1) Promo" in text
    assert "edited template (new draft version 2) Promo" in text
    assert "template.edited" not in text and "approved → draft" not in text and f"campaign {spring}" not in text


def test_deleted_campaign_keeps_its_name(client, logged_in):
    logged_in("support")
    spring, _ = _seed()
    campaigns.delete_draft(spring, SYSTEM)
    assert "deleted draft campaign Spring sale (deleted)" in _text(client.get("/audit"))


def test_filter_by_campaign_name_action_account_and_dates(client, logged_in):
    me = logged_in("admin")
    spring, autumn = _seed()
    text = _text(client.get("/audit?campaign=spring"))
    assert "Spring sale" in text and "Autumn news" not in text and "Promo" not in text
    assert "Autumn news" in _text(client.get(f"/audit?campaign={autumn}"))
    text = _text(client.get("/audit?action=Templates"))
    assert "approved template" in text and "created campaign" not in text
    text = _text(client.get(f"/audit?account={me.id}"))
    assert "No audit events match" in text  # everything above was done by the seed actor
    today = utcnow().date()
    assert "Spring sale" in _text(client.get(f"/audit?from={today}&to={today}"))
    old = db.session.query(AuditEvent).filter(AuditEvent.action == "campaign.created").first()
    old.at = utcnow() - timedelta(days=10)
    db.session.commit()
    yesterday = today - timedelta(days=1)
    text = _text(client.get(f"/audit?from={yesterday}&action=Campaign+created+or+copied"))
    assert text.count("created campaign") == 1
    assert "No audit events match" in _text(client.get(f"/audit?to={today - timedelta(days=20)}"))
    assert client.get("/audit?from=not-a-date&campaign=%25").status_code == 200
