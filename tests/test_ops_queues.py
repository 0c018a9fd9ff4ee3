"""The admin Queues & workers page, on real RQ state: a live worker (name, state, heartbeat),
queue depths, the sweep's last run, a failed job with its error that can be requeued and
deleted (CSRF, admin only, confirmed in the browser), audited."""

from __future__ import annotations

import re

import pytest
from rq import Worker
from rq.job import Job

from dashboard.extensions import db, get_queue, get_redis
from dashboard.models import AuditEvent
from dashboard.services import lifecycle
from tests.conftest import csrf_from, login
from tests.engine import drain, start_worker, stop_worker, wait_for
from tests.test_delivery_faults import ACTOR, make_send

WORKER_ENV = {"HERALD_SWEEP_SECONDS": "1"}


def failed_ids(queue: str = "default") -> list[str]:
    return get_queue(queue).failed_job_registry.get_job_ids()


@pytest.fixture
def admin(app, make_account):
    client = app.test_client()
    assert login(client, make_account("admin").email).status_code == 302
    return client


def test_the_page_shows_a_live_worker_a_failed_job_and_requeues_it(app, admin):
    worker = start_worker(app, **WORKER_ENV)
    try:
        job = get_queue("default").enqueue("tests.job_probes.explode")
        wait_for(lambda: job.id in failed_ids(), 30, "the job to fail in the worker")
        wait_for(lambda: get_redis().hgetall("herald:ops:sweep"), 20, "a sweep to be recorded")
        names = wait_for(lambda: [w.name for w in Worker.all(connection=get_redis())], 10, "the worker to register")
        page = admin.get("/admin/queues")
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert names[0] in html and "pid " in html
        assert re.search(r'data-testid="workers-alive">1<', html)
        assert re.search(r'<span class="badge badge-(ok|muted)">(busy|idle)</span>', html)  # answering
        row = html[html.index(f'data-job-id="{job.id}"'):]
        assert "RuntimeError: boom from a job" in row[:3000] and "Explode" in row[:3000]
        assert "Last run" in html and "nothing needed doing" in html
        assert re.search(r'data-testid="failed-count">1<', html)
    finally:
        stop_worker(worker)

    # Requeue (the worker is stopped, so it waits in the queue for the next one).
    token = csrf_from(html)
    answer = admin.post(f"/admin/queues/failed/{job.id}/requeue", data={"csrf_token": token})
    assert answer.status_code == 302
    assert job.id in get_queue("default").get_job_ids() and job.id not in failed_ids()
    html = admin.get("/admin/queues").get_data(as_text=True)
    assert f"Job {job.id} is back at the end of the default queue." in html
    assert re.search(r'data-testid="queue-default">\s*<td>default</td>\s*<td class="num">1</td>', html)
    assert "No worker is running" in html
    audit = db.session.query(AuditEvent).filter_by(action="job.requeued", target_id=job.id).one()
    assert audit.actor_label.startswith("admin-")

    # It runs again, fails again; then delete it for good.
    drain()
    assert job.id in failed_ids()
    assert admin.post(f"/admin/queues/failed/{job.id}/delete", data={"csrf_token": token}).status_code == 302
    assert job.id not in failed_ids() and not Job.exists(job.id, connection=get_redis())
    html = admin.get("/admin/queues").get_data(as_text=True)
    assert f"Job {job.id} deleted." in html and "No failed jobs." in html
    # Twice: nothing left to act on, said plainly.
    admin.post(f"/admin/queues/failed/{job.id}/delete", data={"csrf_token": token})
    assert "is no longer in the failed list" in admin.get("/admin/queues").get_data(as_text=True)


def test_jobs_are_described_with_their_campaign(app, admin):
    """Scheduled and queued work reads as Herald's: the campaign's name links to it."""
    c = make_send("in_app", 3)
    lifecycle.send(c.id, None, ACTOR)  # enqueued, no worker running
    from datetime import UTC, datetime, timedelta

    from dashboard import jobs

    jobs.enqueue_scheduled(c.id, datetime.now(UTC) + timedelta(hours=2))
    html = admin.get("/admin/queues").get_data(as_text=True)
    assert "Start scheduled" in html and f'href="/campaigns/{c.id}">#{c.id} Faults in_app</a>' in html
    assert re.search(r'data-testid="queue-batch">\s*<td>batch</td>\s*<td class="num">1</td>', html)


def test_only_admins_and_only_with_the_form_token(app, client, logged_in):
    job = get_queue("default").enqueue("tests.job_probes.explode")
    drain()
    assert job.id in failed_ids()
    logged_in("marketer")
    assert client.get("/admin/queues").status_code == 403
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post(f"/admin/queues/failed/{job.id}/requeue", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/admin/queues/failed/{job.id}/delete", data={}).status_code == 400  # CSRF first
    assert job.id in failed_ids()


def test_redis_down_is_said_plainly(app, admin):
    import redis

    real = app.extensions["herald_redis"]
    app.extensions["herald_redis"] = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        page = admin.get("/admin/queues")
    finally:
        app.extensions["herald_redis"] = real
    assert page.status_code == 503
    assert "Redis is not answering" in page.get_data(as_text=True)


def test_requeue_in_the_browser_asks_first(browser, live_server, app, make_account):
    """The button opens the confirmation dialog; Go back leaves the job failed; confirming requeues.
    The page, full (a failed job, a scheduled one, a queued send), passes axe and fits a phone."""
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    from dashboard import jobs
    from tests.browser_pages import SHOTS
    from tests.test_browser_a11y import _axe

    account = make_account("admin")
    job = get_queue("default").enqueue("tests.job_probes.explode")
    drain()
    c = make_send("in_app", 3)
    jobs.enqueue_scheduled(c.id, datetime.now(UTC) + timedelta(hours=2))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # axe is injected
    page = context.new_page()
    try:
        page.goto(f"{live_server}/login")
        page.get_by_label("Email").fill(account.email)
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{live_server}/admin/queues")
        expect(page.get_by_role("heading", name="Queues & workers")).to_be_visible()
        page.locator("summary", has_text="Traceback").click()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "admin-queues-1280.png"), full_page=True)
        assert _axe(page) == []
        dialog = page.get_by_role("dialog")
        page.get_by_role("button", name=f"Requeue {job.id}").click()
        expect(dialog).to_contain_text("Run job")
        dialog.get_by_role("button", name="Go back").click()
        assert job.id in failed_ids()
        page.get_by_role("button", name=f"Requeue {job.id}").click()
        dialog.get_by_role("button", name=re.compile("Requeue")).click()
        expect(page.get_by_text(f"Job {job.id} is back at the end of the default queue.")).to_be_visible()
        assert job.id not in failed_ids() and job.id in get_queue("default").get_job_ids()
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(SHOTS / "admin-queues-390.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert _axe(page) == []
    finally:
        context.close()
