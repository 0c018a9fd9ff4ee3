"""The draft's Audience panel (both databases): choose a segment or list, its live count, Freeze now,
the snapshot line, errors in the page, read-only for support."""

from __future__ import annotations

import os
import re

from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Campaign, Recipient, User
from dashboard.services import audiences, campaigns
from dashboard.services.actor import Actor
from tests.conftest import csrf_from
from tests.test_api_campaigns import make_template
from tests.test_audiences import make_list, make_segment, make_users

ACTOR = Actor.system("test")
HX = {"HX-Request": "true"}


def draft() -> Campaign:
    make_template()
    return campaigns.create({"name": "Spring", "templateId": "promo", "variables": {"offer": "10%"}}, ACTOR)


def page(client, campaign_id: int) -> str:
    response = client.get(f"/campaigns/{campaign_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def panel(html: str) -> str:
    match = re.search(r'<section class="card audience-panel".*?</section>', html, re.S)
    assert match, "no audience panel"
    return match.group(0)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_choose_a_segment_see_its_count_freeze_and_the_snapshot_line(client, logged_in):
    logged_in("marketer")
    make_users(9)
    segment = make_segment()
    c = draft()
    html = page(client, c.id)
    box = panel(html)
    assert "Hand-picked / CSV" in box and f'value="segment:{segment.id}"' in box and "Pro users" in box
    token = csrf_from(html)
    count = client.get(f"/campaigns/{c.id}/_audience/count?audience=segment:{segment.id}", headers=HX)
    assert count.status_code == 200 and "6 users match now" in count.get_data(as_text=True)
    chosen = client.post(f"/campaigns/{c.id}/audience", data={"audience": f"segment:{segment.id}", "csrf_token": token},
                         headers=HX)
    assert chosen.status_code == 204 and chosen.headers["HX-Refresh"] == "true"
    html = page(client, c.id)
    shown = text(panel(html))
    assert "Pro users" in shown and "6 users match now" in shown and "Not frozen yet" in shown
    assert "Freeze now" in shown
    assert "taken when you press Send or Schedule" in text(html)
    assert 'id="add-recipients"' in html  # hidden by the stylesheet next to a chosen audience
    frozen = client.post(f"/campaigns/{c.id}/audience/freeze", data={"csrf_token": token})
    assert frozen.status_code == 302
    html = page(client, c.id)
    shown = text(panel(html))
    assert re.search(r"Snapshot: 6 users , taken \w{3} \d+ \w{3} \d\d:\d\d", shown), shown
    assert "Refresh snapshot" in shown and "Snapshot taken: 6 recipients" in text(html)
    assert db.session.scalar(select(func.count()).select_from(Recipient).where(Recipient.campaign_id == c.id)) == 6
    assert "data-confirm=\"This drops the snapshot of 6 recipients" in html


def test_a_list_with_its_size_and_back_to_hand_picked(client, logged_in):
    logged_in("marketer")
    make_users(3)
    user_list = make_list(["u1", "u2", "zz"])
    c = draft()
    token = csrf_from(page(client, c.id))
    assert "VIPs (3)" in panel(page(client, c.id))
    count = client.get(f"/campaigns/{c.id}/_audience/count?audience=list:{user_list.id}", headers=HX)
    assert "3 members" in count.get_data(as_text=True)
    response = client.post(f"/campaigns/{c.id}/audience",
                           data={"audience": f"list:{user_list.id}", "csrf_token": token})
    assert response.status_code == 302
    audiences.freeze(c.id, ACTOR)
    manual = client.post(f"/campaigns/{c.id}/audience", data={"audience": "manual", "csrf_token": token})
    assert manual.status_code == 302
    db.session.expire_all()
    c = db.session.get(Campaign, c.id)
    assert (c.audience_kind, c.total) == (None, 0)
    assert "Hand-picked or uploaded" in text(panel(page(client, c.id)))


def test_errors_show_in_the_page(client, logged_in):
    logged_in("marketer")
    make_users(3)
    user_list = make_list(["u1"])
    c = draft()
    token = csrf_from(page(client, c.id))
    client.post(f"/campaigns/{c.id}/recipients", data={"user_ids": "a\nb", "csrf_token": token})
    refused = client.post(f"/campaigns/{c.id}/audience", data={"audience": f"list:{user_list.id}", "csrf_token": token},
                          headers=HX)
    assert refused.status_code == 409
    assert "remove the 2 recipients first" in refused.get_data(as_text=True)  # the error card the page shows
    unknown = client.post(f"/campaigns/{c.id}/audience", data={"audience": "segment:999", "csrf_token": token},
                          headers=HX)
    assert unknown.status_code == 400 and "no segment 999" in unknown.get_data(as_text=True)
    garbage = client.post(f"/campaigns/{c.id}/audience", data={"audience": "everyone", "csrf_token": token})
    assert garbage.status_code == 302
    assert "Choose where the recipients come from" in text(page(client, c.id))
    no_audience = client.post(f"/campaigns/{c.id}/audience/freeze", data={"csrf_token": token}, headers=HX)
    assert no_audience.status_code == 409 and "no audience to freeze" in no_audience.get_data(as_text=True)
    missing_token = client.post(f"/campaigns/{c.id}/audience", data={"audience": "manual"})
    assert missing_token.status_code == 400
    assert db.session.get(Campaign, c.id).audience_kind is None


def test_an_empty_segment_send_from_the_page_says_so(client, logged_in):
    logged_in("marketer")
    make_users(2)
    segment = make_segment({"match": "all", "conditions": [
        {"type": "attribute", "attribute": "plan", "operator": "eq", "value": "gold"}]}, name="Gold")
    c = draft()
    audiences.set_audience(c.id, "segment", segment.id, ACTOR)
    html = page(client, c.id)
    assert re.search(r'name="intent" value="now"[^>]*>Send now', html)  # enabled: the audience is taken at send
    response = client.post(f"/campaigns/{c.id}/send", data={"intent": "now", "csrf_token": csrf_from(html)},
                           follow_redirects=True)
    assert "The segment “Gold” matches no users" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Campaign, c.id).status == "draft"


def test_support_sees_the_audience_but_no_form(client, logged_in):
    make_users(3)
    segment = make_segment()
    c = draft()
    audiences.set_audience(c.id, "segment", segment.id, ACTOR)
    audiences.freeze(c.id, ACTOR)
    logged_in("support")
    html = page(client, c.id)
    box = panel(html)
    assert "Snapshot: " in text(box) and "<form" not in box
    token = csrf_from(html)
    assert client.post(f"/campaigns/{c.id}/audience/freeze", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/campaigns/{c.id}/audience", data={"audience": "manual", "csrf_token": token}
                       ).status_code == 403
    assert client.get(f"/campaigns/{c.id}/_audience/count?audience=segment:{segment.id}").status_code == 403
    db.session.expire_all()
    assert db.session.get(Campaign, c.id).audience_kind == "segment"


def test_browser_choose_a_segment_freeze_and_see_the_snapshot(page, live_server, make_account):
    """Headless Chromium: pick a segment (its live count appears), use it, freeze, refresh the
    snapshot through the confirmation; screenshots at 1280 and 390 px."""
    from pathlib import Path

    from tests.test_browser import _sign_in

    shots = Path(os.environ.get("HERALD_AUDIENCE_SHOTS", "/tmp/shots/audience"))
    shots.mkdir(parents=True, exist_ok=True)
    make_users(30)
    segment = make_segment()
    make_list(["u1", "u2", "u3"], name="Beta testers")
    c = draft()
    _sign_in(page, live_server, make_account("marketer").email)
    page.goto(f"{live_server}/campaigns/{c.id}")
    panel_box = page.locator("#audience")
    panel_box.get_by_label("Recipients come from").select_option(f"segment:{segment.id}")
    expect_text(page, "#audience-count", "20 users match now")
    panel_box.get_by_role("button", name="Use this audience").click()
    page.wait_for_selector("text=Not frozen yet")
    assert not page.locator("#add-recipients").is_visible()  # one source of recipients
    assert "taken when you press Send or Schedule" in page.locator("#review").inner_text()
    page.locator("#audience").screenshot(path=str(shots / "audience-chosen-1280.png"))
    page.locator("#audience").get_by_role("button", name="Freeze now").click()
    page.wait_for_selector("[data-testid=audience-snapshot] >> text=Snapshot: 20 users")
    db.session.execute(User.__table__.update().values(attributes={"plan": "pro"}).where(User.user_id == "u0"))
    db.session.commit()
    page.locator("#audience").get_by_role("button", name="Refresh snapshot").click()
    page.locator("[data-confirm-ok]").click()
    page.wait_for_selector("[data-testid=audience-snapshot] >> text=Snapshot: 21 users")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.locator("#audience").screenshot(path=str(shots / f"audience-panel-{width}.png"))
        page.screenshot(path=str(shots / f"audience-page-{width}.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the page scrolls sideways at 390 px"
    panel_box.get_by_label("Recipients come from").select_option(f"segment:{segment.id}")
    page.locator("#audience").get_by_role("button", name="Use this audience").click()
    page.locator("[data-confirm-ok]").click()  # dropping the snapshot asks first
    page.wait_for_selector("text=Not frozen yet")
    db.session.expire_all()
    assert db.session.get(Campaign, c.id).total == 0


def expect_text(page, selector: str, wanted: str) -> None:
    page.wait_for_function("([s, w]) => (document.querySelector(s)?.textContent || '').includes(w)",
                           arg=[selector, wanted], timeout=5000)
