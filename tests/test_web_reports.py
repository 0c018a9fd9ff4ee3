"""The campaign page's Report section: loaded lazily once a send started, tiles with the
benchmark, an accessible SVG chart in the viewer's time zone with an hour/day toggle, links
and failures tables (escaped), the empty state, the engagement CSV; the draft form's
"Track link clicks" checkbox."""

import re

from sqlalchemy import update

from dashboard.extensions import db
from dashboard.models import Account, Campaign, Notification
from dashboard.services import campaigns
from tests.test_reports import ACTOR, IN_APP_ROWS, h, sent_campaign
from tests.test_web_campaigns import _new_campaign, _token


def section(client, campaign_id: int, **args) -> str:
    query = "&".join(f"{k}={v}" for k, v in args.items())
    response = client.get(f"/campaigns/{campaign_id}/_report" + (f"?{query}" if query else ""),
                          headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_campaign_page_loads_the_report_lazily_once_started(client, logged_in):
    logged_in("support")
    c = sent_campaign(IN_APP_ROWS)
    page = client.get(f"/campaigns/{c.id}").get_data(as_text=True)
    assert f'hx-get="/campaigns/{c.id}/_report"' in page and 'hx-trigger="load"' in page
    assert "<svg" not in page.split('id="report"', 1)[1].split("</section>", 1)[0]  # the page does not wait for it
    draft = campaigns.create({"name": "Draft", "templateId": "rep", "channel": "in_app"}, ACTOR)
    assert 'id="report"' not in client.get(f"/campaigns/{draft.id}").get_data(as_text=True)


def test_report_section_tiles_chart_tables(client, logged_in):
    logged_in("support")
    earlier = sent_campaign([{"user": f"b{j}", "sent": 0, **({"read": 1} if j < 5 else {})} for j in range(10)],
                            name="Earlier")
    assert earlier.read_count == 5
    c = sent_campaign(IN_APP_ROWS, name="Now", completed=h(100))  # a send of over 3 days: days by default
    html = section(client, c.id)
    assert 'data-testid="rpt-delivered">5<' in html and "delivered of 7 · 1 failed" in html
    assert 'data-testid="rpt-readRate">80.0%<' in html and 'data-testid="rpt-clickRate">60.0%<' in html
    assert "vs last 1: +30.0 pts" in html and "vs last 1: +60.0 pts" in html  # 80 vs 50, 60 vs 0
    svg = re.search(r"<svg[^>]*>.*?</svg>", html, re.S).group(0)
    assert 'role="img"' in svg and 'width="100%"' in svg and "viewBox=" in svg
    labelled = re.search(r'aria-labelledby="([^"]+)"', svg).group(1).split()
    for ident in labelled:
        assert re.search(rf'<(title|desc) id="{ident}">[^<]+</', svg), ident
    assert "Delivered, read and clicked per day" in svg
    assert svg.count("<polyline") == 3
    assert "Recipients per day" in svg and ">20 Nov<" in svg and ">22 Nov<" in svg
    assert re.search(r'class="rpt-ytick"[^>]*>0<', svg)
    assert "Delivered <span class=\"muted\">(5)</span>" in html and "Clicked <span class=\"muted\">(3)</span>" in html
    assert "<details" in html and "Show the numbers as a table" in html
    table = html.split("<details", 1)[1].split("</details>", 1)[0]
    assert re.findall(r'<th scope="row">([^<]+)</th>', table) == ["20 Nov", "21 Nov", "22 Nov"]
    links = html.split('data-testid="report-links"', 1)[1].split("</table>", 1)[0]
    assert "https://app.example/a" in links and ">66.7%<" in links
    failures = html.split('data-testid="report-failures"', 1)[1].split("</table>", 1)[0]
    assert "no email address" in failures
    assert f'href="/campaigns/{c.id}/engagement.csv"' in html


def test_hour_toggle_and_the_viewers_time_zone(client, logged_in):
    account = logged_in("marketer")
    db.session.execute(update(Account).where(Account.id == account.id).values(timezone="Asia/Tokyo"))
    db.session.commit()
    c = sent_campaign(IN_APP_ROWS[:2])  # 09:00-12:00 UTC on 20 Nov = 18:00-21:00 in Tokyo
    html = section(client, c.id, bucket="hour")
    assert 'aria-current="true" data-testid="bucket-hour"' in html
    assert "Times in Tokyo" in html
    wide, narrow = re.findall(r"<svg[^>]*>.*?</svg>", html, re.S)
    for svg in (wide, narrow):  # the phone's drawing has the same four hours (at most 4 ticks)
        ticks = re.findall(r'class="rpt-xtick"[^>]*>([^<]*)(?:<tspan[^>]*>([^<]*)</tspan>)?', svg)
        assert ticks == [("18:00", "20 Nov"), ("19:00", ""), ("20:00", ""), ("21:00", "")]
    table = html.split("<details", 1)[1].split("</details>", 1)[0]
    assert re.findall(r'<th scope="row">([^<]+)</th>', table) == [
        "20 Nov 18:00", "20 Nov 19:00", "20 Nov 20:00", "20 Nov 21:00"]
    day = section(client, c.id, bucket="day")
    assert 'aria-current="true" data-testid="bucket-day"' in day and "per day" in day
    # days are UTC days, labelled by their UTC date (not the Tokyo date of UTC midnight)
    assert "Times in UTC" in day and re.findall(r'<th scope="row">([^<]+)</th>',
                                                day.split("<details", 1)[1]) == ["20 Nov"]
    assert client.get(f"/campaigns/{c.id}/_report?bucket=week").status_code == 400


def test_user_text_is_escaped(client, logged_in):
    logged_in("support")
    c = sent_campaign(IN_APP_ROWS[:1])
    db.session.execute(update(Notification).where(Notification.campaign_id == c.id)
                       .values(action_url='https://x.example/"><script>alert(1)</script>'))
    db.session.execute(update(Campaign).where(Campaign.id == c.id)
                       .values(name="<b>n</b>"))
    db.session.commit()
    html = section(client, c.id)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_empty_state_when_nothing_was_delivered(client, logged_in):
    logged_in("support")
    c = sent_campaign([{"user": "x", "status": "failed", "error": "SMTP 550 mailbox unavailable"}])
    html = section(client, c.id)
    assert 'data-testid="report-empty"' in html and "Nothing has been delivered yet" in html
    assert "<svg" not in html and "SMTP 550 mailbox unavailable" in html  # the failures still show


def test_engagement_csv_from_the_page(client, logged_in):
    logged_in("support")
    c = sent_campaign(IN_APP_ROWS[:2])
    response = client.get(f"/campaigns/{c.id}/engagement.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0] == "userId,status,deliveredAt,readAt,clickedAt,clickedLinks,lastError"
    assert [line.split(",")[0] for line in lines[1:]] == ["u1", "u2"]


def test_draft_form_track_clicks_checkbox(client, logged_in):
    logged_in("marketer")
    from tests.test_api_campaigns import make_template
    make_template()
    form = client.get("/campaigns/new").get_data(as_text=True)
    assert re.search(r'<input[^>]* checked id="track_clicks" name="track_clicks" type="checkbox"', form)
    off = _new_campaign(client, channel="email")  # the box left unticked
    assert db.session.get(Campaign, off).track_clicks is False
    edit = client.get(f"/campaigns/{off}/edit").get_data(as_text=True)
    assert re.search(r'<input[^>]* id="track_clicks" name="track_clicks" type="checkbox"', edit)
    assert not re.search(r'<input[^>]* checked id="track_clicks"', edit)
    response = client.post(f"/campaigns/{off}/edit", data={
        "csrf_token": _token(client, f"/campaigns/{off}/edit"), "name": "Promo blast", "template_id": "promo",
        "channel": "email", "delivery_mode": "batch", "failure_threshold": "50", "var-offer": "5% off",
        "track_clicks": "y"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Campaign, off).track_clicks is True
