"""Campaign reports: buckets that sum to the totals (hour and day, zeros included), per-link
clicks (email: tracked links; in-app: the action URL), the benchmark against the last 10
campaigns, failures by reason, the API and the per-recipient engagement CSV."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from dashboard.extensions import db
from dashboard.models import Campaign, LinkClick, Notification, Recipient
from dashboard.services import campaigns, clicks, recipients, reports
from dashboard.services.actor import Actor
from tests.test_api_campaigns import make_template

ACTOR = Actor.system("test")
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def sent_campaign(rows: list[dict], channel: str = "in_app", name: str = "Report", kind: str = "campaign",
                  completed: datetime | None = None) -> Campaign:
    """A finished campaign with exactly these recipients. Each row: user, status ("sent" by
    default), sent (hours after T0), read/clicked (hours, in-app), error, action (in-app URL).
    Counters are set the way the engine and the feed set them (recount; one read/click per row)."""
    if db.session.scalar(select(func.count()).select_from(Campaign)) == 0 or not _template_exists():
        make_template("rep", channels={"in_app": {"title": "T", "body": "B", "actionUrl": "https://app.example/a"},
                                       "email": {"subject": "S", "text": "T"}}, schema=[])
    c = campaigns.create({"name": name, "templateId": "rep", "channel": channel}, ACTOR)
    recipients.add_manual(c.id, [r["user"] for r in rows], None, ACTOR)
    ids = dict(db.session.execute(select(Recipient.user_id, Recipient.id).where(Recipient.campaign_id == c.id)).all())
    for r in rows:
        status = r.get("status", "sent")
        db.session.execute(update(Recipient).where(Recipient.id == ids[r["user"]]).values(
            status=status, sent_at=h(r["sent"]) if status == "sent" else None,
            last_error=r.get("error"), updated_at=h(r.get("sent", 0))))
        if status == "sent" and channel == "in_app":
            db.session.execute(insert(Notification).values(
                recipient_id=ids[r["user"]], campaign_id=c.id, user_id=r["user"], title="T", body="B",
                action_url=r.get("action", "https://app.example/a"), created_at=h(r["sent"]),
                read_at=h(r["read"]) if "read" in r else None,
                clicked_at=h(r["clicked"]) if "clicked" in r else None))
    c = db.session.get(Campaign, c.id)
    recipients.recount(c)
    c.kind = kind
    c.status, c.started_at = "sent", T0
    c.completed_at = completed or h(max([r.get("sent", 0) for r in rows] + [0]) + 0.5)
    c.read_count = sum(1 for r in rows if "read" in r)
    c.clicked_count = sum(1 for r in rows if "clicked" in r)
    db.session.commit()
    return c


def _template_exists() -> bool:
    from dashboard.models import Template
    return db.session.scalar(select(func.count()).select_from(Template).where(Template.template_id == "rep")) > 0


def recipient_id(c: Campaign, user: str) -> int:
    return db.session.scalar(select(Recipient.id).where(Recipient.campaign_id == c.id, Recipient.user_id == user))


def click(c: Campaign, user: str, url: str, at: datetime) -> None:
    """A real click through the tracking service, then moved to a known time."""
    rid = recipient_id(c, user)
    assert clicks.record(rid, url) is True
    db.session.execute(update(LinkClick).where(LinkClick.recipient_id == rid, LinkClick.url == url)
                       .values(clicked_at=at))
    db.session.commit()


IN_APP_ROWS = [
    {"user": "u1", "sent": 0, "read": 0.5, "clicked": 0.6, "action": "https://app.example/a"},
    {"user": "u2", "sent": 0.2, "read": 3.1},
    {"user": "u3", "sent": 3.5, "read": 27.0, "clicked": 27.5, "action": "https://app.example/b"},
    {"user": "u4", "sent": 3.9},
    {"user": "u5", "sent": 26.0, "read": 50.0, "clicked": 50.2, "action": "https://app.example/a"},
    {"user": "u6", "status": "failed", "error": "no email address"},
    {"user": "u7", "status": "skipped"},
]


def sums(points, key):
    return sum(p[key] for p in points)


@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_buckets_sum_to_the_totals(app, bucket):
    c = sent_campaign(IN_APP_ROWS)
    report = reports.report(c, bucket)
    t = report["totals"]
    assert (t["recipients"], t["delivered"], t["failed"], t["skipped"], t["pending"]) == (7, 5, 1, 1, 0)
    assert (t["read"], t["clicked"], t["readRate"], t["clickRate"]) == (4, 3, 80.0, 60.0)
    points = report["series"]["points"]
    assert report["series"]["bucket"] == bucket
    for key in ("delivered", "read", "clicked"):
        assert sums(points, key) == t[key], key
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    times = [datetime.fromisoformat(p["t"]) for p in points]
    assert all(b - a == step for a, b in zip(times, times[1:], strict=False))  # every bucket, no gaps
    assert all(t.utcoffset() == timedelta(0) for t in times)
    if bucket == "hour":
        assert times[0] == T0 and times[-1] == h(50)  # the first delivery to the last click
        assert len(points) == 51
        by_t = {p["t"]: p for p in points}
        assert by_t[T0.isoformat()] == {"t": T0.isoformat(), "delivered": 2, "read": 1, "clicked": 1}
        assert by_t[h(3).isoformat()] == {"t": h(3).isoformat(), "delivered": 2, "read": 1, "clicked": 0}
        assert by_t[h(10).isoformat()] == {"t": h(10).isoformat(), "delivered": 0, "read": 0, "clicked": 0}
    else:
        assert [p["delivered"] for p in points] == [4, 1, 0]
        assert [p["read"] for p in points] == [2, 1, 1] and [p["clicked"] for p in points] == [1, 1, 1]
        assert times[0] == datetime(2026, 11, 20, tzinfo=UTC)


def test_email_series_counts_each_recipients_first_click(app):
    c = sent_campaign([{"user": "a", "sent": 0}, {"user": "b", "sent": 0.1}, {"user": "c", "sent": 0.2}],
                      channel="email")
    click(c, "a", "https://shop.example/1", h(1.2))
    click(c, "a", "https://shop.example/2", h(5.5))  # a's second link: not a second clicker
    click(c, "b", "https://shop.example/1", h(2.1))
    db.session.refresh(c)
    assert c.clicked_count == 2
    for bucket in ("hour", "day"):
        report = reports.report(c, bucket)
        points = report["series"]["points"]
        assert sums(points, "clicked") == report["totals"]["clicked"] == 2
        assert sums(points, "delivered") == report["totals"]["delivered"] == 3
        assert sums(points, "read") == report["totals"]["read"] == 0
    hourly = {p["t"]: p["clicked"] for p in reports.report(c, "hour")["series"]["points"]}
    assert (hourly[h(1).isoformat()], hourly[h(2).isoformat()]) == (1, 1)
    assert max(hourly) == h(2).isoformat()  # a's later second link is not a first click: the series ends at b's
    assert reports.report(c)["links"] == [
        {"url": "https://shop.example/1", "clickers": 2, "share": 66.7},
        {"url": "https://shop.example/2", "clickers": 1, "share": 33.3}]


def test_in_app_links_are_the_clicked_action_urls(app):
    c = sent_campaign(IN_APP_ROWS)
    assert reports.report(c)["links"] == [{"url": "https://app.example/a", "clickers": 2, "share": 66.7},
                                          {"url": "https://app.example/b", "clickers": 1, "share": 33.3}]


def test_nothing_delivered_has_no_points(app):
    c = sent_campaign([{"user": "x", "status": "failed", "error": "boom"}])
    report = reports.report(c, "day")
    assert report["series"]["points"] == [] and report["links"] == []
    assert report["totals"]["readRate"] == 0.0 and report["failures"] == [{"reason": "boom", "count": 1}]


def test_benchmark_is_the_last_ten_sent_campaigns(app):
    # 11 earlier campaigns: read rates 10..110 % of 10 delivered (the oldest, 0 %, falls out)
    for i in range(11):
        rows = [{"user": f"b{i}-{j}", "sent": 0, **({"read": 1} if j < i else {}), **({"clicked": 1} if j < i // 2
                                                                                          else {})}
                for j in range(10)]
        sent_campaign(rows, name=f"Earlier {i}", completed=T0 + timedelta(days=i))
    sent_campaign([{"user": "n1", "sent": 0, "read": 1}], name="One-call", kind="notification",
                  completed=T0 + timedelta(days=30))  # not a campaign: left out
    this = sent_campaign([{"user": f"t{j}", "sent": 0, **({"read": 1, "clicked": 1.5} if j < 9 else {})}
                          for j in range(10)], name="This", completed=T0 + timedelta(days=40))
    b = reports.report(this)["benchmark"]
    reads = [100 * i / 10 for i in range(1, 11)]
    click_rates = [100 * (i // 2) / 10 for i in range(1, 11)]
    assert b["campaigns"] == 10
    assert b["readRate"] == round(sum(reads) / 10, 1) == 55.0
    assert b["clickRate"] == round(sum(click_rates) / 10, 1) == 25.0
    assert (b["readRateDiff"], b["clickRateDiff"]) == (35.0, 65.0)


def test_benchmark_without_earlier_campaigns(app):
    c = sent_campaign([{"user": "only", "sent": 0}])
    assert reports.report(c)["benchmark"] == {"campaigns": 0, "readRate": None, "clickRate": None,
                                              "readRateDiff": None, "clickRateDiff": None}


def test_failures_grouped_by_reason_top_ten(app):
    rows = [{"user": f"f{i}-{j}", "status": "failed", "error": f"reason {i:02d}"}
            for i in range(12) for j in range(i + 1)]
    rows += [{"user": "ok", "sent": 0}]
    c = sent_campaign(rows)
    failures = reports.report(c)["failures"]
    assert failures == [{"reason": f"reason {i:02d}", "count": i + 1} for i in range(11, 1, -1)]


def test_api_report_and_bucket_validation(api):
    c = sent_campaign(IN_APP_ROWS)
    response = api("GET", f"/campaigns/{c.id}/report?bucket=day")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) >= {"totals", "series", "links", "benchmark", "failures"}
    assert body["series"]["bucket"] == "day" and sums(body["series"]["points"], "delivered") == 5
    assert api("GET", f"/campaigns/{c.id}/report").get_json()["series"]["bucket"] == "hour"
    bad = api("GET", f"/campaigns/{c.id}/report?bucket=week")
    assert bad.status_code == 400 and bad.get_json()["error"]["details"] == [
        {"field": "bucket", "message": "must be hour or day"}]
    assert api("GET", "/campaigns/999999/report").status_code == 404


def parse_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_engagement_csv_columns(api):
    c = sent_campaign(IN_APP_ROWS[:2] + [{"user": "u6", "status": "failed", "error": "=HYPERLINK(\"x\")"}])
    response = api("GET", f"/campaigns/{c.id}/engagement.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f"campaign-{c.id}-engagement.csv" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.splitlines()[0] == "userId,status,deliveredAt,readAt,clickedAt,clickedLinks,lastError"
    rows = {r["userId"]: r for r in parse_csv(text)}
    assert rows["u1"] == {"userId": "u1", "status": "sent", "deliveredAt": T0.isoformat(),
                          "readAt": h(0.5).isoformat(), "clickedAt": h(0.6).isoformat(),
                          "clickedLinks": "https://app.example/a", "lastError": ""}
    assert (rows["u2"]["readAt"], rows["u2"]["clickedAt"], rows["u2"]["clickedLinks"]) == (h(3.1).isoformat(), "", "")
    assert rows["u6"]["status"] == "failed" and rows["u6"]["deliveredAt"] == ""
    assert rows["u6"]["lastError"] == "'=HYPERLINK(\"x\")"  # a formula cell is neutralised


def test_engagement_csv_email_links_and_paging(app):
    users = [{"user": f"e{i:02d}", "sent": i / 10} for i in range(7)]
    c = sent_campaign(users, channel="email")
    click(c, "e01", "https://shop.example/1", h(1))
    click(c, "e01", "https://shop.example/2", h(2))
    click(c, "e05", "https://shop.example/2", h(3))
    whole = "".join(reports._engagement_lines(c.id))
    paged = "".join(reports._engagement_lines(c.id, page=2))  # four pages of two
    assert whole == paged
    rows = {r["userId"]: r for r in parse_csv(whole)}
    assert list(rows) == [f"e{i:02d}" for i in range(7)]  # recipient id order
    assert rows["e01"]["clickedLinks"] == "https://shop.example/1 https://shop.example/2"
    assert rows["e01"]["clickedAt"] == h(1).isoformat() and rows["e01"]["readAt"] == ""
    assert rows["e05"]["clickedLinks"] == "https://shop.example/2" and rows["e00"]["clickedLinks"] == ""


@pytest.mark.parametrize("role", ["support", "marketer", "admin"])
def test_every_role_reads_reports(client, api_key, role):
    c = sent_campaign(IN_APP_ROWS[:1])
    headers = {"Authorization": f"Bearer {api_key(role)}"}
    assert client.get(f"/api/v1/campaigns/{c.id}/report", headers=headers).status_code == 200
    assert client.get(f"/api/v1/campaigns/{c.id}/engagement.csv", headers=headers).status_code == 200
    assert client.get(f"/api/v1/campaigns/{c.id}/report").status_code == 401


def test_an_unchanged_campaign_answers_from_the_cache_and_any_new_event_recomputes(app):
    from dashboard.extensions import get_redis
    c = sent_campaign([{"user": "a", "sent": 0}, {"user": "b", "sent": 0}], channel="email")
    click(c, "a", "https://shop.example/1", h(1))
    first = reports.report(c, "hour")
    assert len(get_redis().keys("herald:report:*")) == 1
    # a change behind the counters' back is not seen while the counters are unchanged (the cache)
    db.session.execute(update(Recipient).where(Recipient.campaign_id == c.id).values(last_error="x"))
    db.session.commit()
    assert reports.report(c, "hour") == first
    click(c, "a", "https://shop.example/2", h(2))  # a's second link: no counter moves, a row does
    again = reports.report(c, "hour")
    assert [link["url"] for link in again["links"]] == ["https://shop.example/1", "https://shop.example/2"]
    click(c, "b", "https://shop.example/1", h(3))
    db.session.refresh(c)
    latest = reports.report(c, "hour")
    assert sums(latest["series"]["points"], "clicked") == latest["totals"]["clicked"] == 2
