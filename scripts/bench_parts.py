"""One benchmark part per process (so peak RSS is that part's own); prints one JSON line.
The external-channel parts are in scripts/bench_channels.py."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import resource
import subprocess
import threading
import time

import httpx
from flask_migrate import upgrade
from sqlalchemy import text, update

from dashboard import create_app
from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, Recipient
from dashboard.services import accounts, campaigns, lifecycle, recipients, templates, uploads
from dashboard.services.actor import Actor
from scripts.bench_procs import Children, free_port, main, web_command

ACTOR = Actor.system("bench")
ROWS = 100_000


def make_csv(rows: int = ROWS) -> bytes:
    rnd = random.Random(7)
    out = io.StringIO()
    out.write("userId,firstName,offer,city,banner\n")
    names, cities = ["Ann", "Bob", "Cleo", "Dev", "Eve"], ["Oslo", "Rome", "Lima", "Pune"]
    for i in range(rows):
        out.write(f"u-{i:06d},{rnd.choice(names)},{rnd.randint(5, 50)}%,{rnd.choice(cities)},"
                  f"https://i.io/{i % 97}.png\n")
    return out.getvalue().encode()


def setup(app) -> tuple[int, str]:
    upgrade()
    get_redis().flushdb()
    # Every part starts from the shipped channel settings (an earlier part may have raised a limit).
    db.session.execute(text("TRUNCATE recipients, campaigns, template_versions, templates, audit_events, "
                            "api_keys, accounts, channel_configs RESTART IDENTITY CASCADE"))
    db.session.commit()
    templates.create({"name": "Bench", "templateId": "bench",
                      "channels": {"in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}",
                                              "imageUrl": "{{ banner }}", "actionUrl": "https://shop.io/{{ city }}"}},
                      "variableSchema": [{"key": "firstName", "type": "string", "required": True},
                                         {"key": "offer", "type": "string", "required": True},
                                         {"key": "city", "type": "string"}, {"key": "banner", "type": "image"}]},
                     ACTOR)
    templates.transition("bench", "approve", ACTOR)
    campaign = campaigns.create({"name": "Bench", "templateId": "bench"}, ACTOR)
    owner = accounts.create_account("bench@example.com", "marketer", "bench-password", ACTOR)
    _, key = accounts.create_api_key(owner, "bench", ACTOR)
    return campaign.id, key


def floor_parse(data: bytes) -> float:
    start = time.perf_counter()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert len(rows) == ROWS + 1
    return time.perf_counter() - start


def floor_copy(data: bytes) -> float:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))[1:]
    conn = db.session.connection()
    conn.execute(text("CREATE TEMP TABLE copy_floor (campaign_id int, user_id varchar(128), variables text)"))
    raw = conn.connection.driver_connection
    start = time.perf_counter()
    with raw.cursor() as cur, cur.copy("COPY copy_floor FROM STDIN") as copy:
        for r in rows:
            copy.write_row((1, r[0], json.dumps({"firstName": r[1], "offer": r[2], "city": r[3], "banner": r[4]})))
    db.session.commit()
    return time.perf_counter() - start


def part_csv() -> dict:
    app = create_app()
    client = app.test_client()
    with app.app_context():
        campaign_id, key = setup(app)
        data = make_csv()
        headers = {"Authorization": f"Bearer {key}"}
        url = f"/api/v1/campaigns/{campaign_id}/recipients/upload"
        start = time.perf_counter()
        response = client.post(url + "?dryRun=true", headers=headers,
                               data={"file": (io.BytesIO(data), "bench.csv")}, content_type="multipart/form-data")
        validate_s = time.perf_counter() - start
        assert response.status_code == 200 and response.get_json()["accepted"] == ROWS, response.get_json()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # Import: the confirm step of the dashboard (the staged rows), timed on its own.
        preview = uploads.validate_upload(campaign_id, io.BytesIO(data))
        start = time.perf_counter()
        outcome = uploads.confirm(campaign_id, preview["token"], ACTOR)
        import_s = time.perf_counter() - start
        assert outcome["imported"] == ROWS
        return {"validate_s": validate_s, "import_s": import_s, "rss_mb": rss_mb,
                "floor_parse_s": floor_parse(data), "floor_copy_s": floor_copy(data),
                "size_mb": len(data) / 1024 / 1024}


def add_recipients(campaign_id: int, count: int, email: bool = False) -> None:
    rows = [(f"u-{i:06d}", {"firstName": "Ann", "offer": "20%"}, f"u{i:06d}@example.com" if email else None)
            for i in range(count)]
    recipients.bulk_upsert(campaign_id, rows)
    recipients.recount(db.session.get(Campaign, campaign_id))
    db.session.commit()


def wait_final(campaign_id: int, timeout: float, poll: float = 0.05, every_second=None) -> Campaign:
    """The campaign once it is sent, failed or cancelled; `every_second` runs about once a second
    meanwhile (sampling with `ps` costs CPU the workers need)."""
    start, sampled = time.monotonic(), 0.0
    while True:
        db.session.expire_all()
        campaign = db.session.get(Campaign, campaign_id)
        if campaign.status in ("sent", "failed", "cancelled"):
            return campaign
        if time.monotonic() - start > timeout:
            raise SystemExit(f"campaign {campaign_id} is still {campaign.status} after {timeout:g} s")
        if every_second and time.monotonic() - sampled > 1.0:
            every_second()
            sampled = time.monotonic()
        time.sleep(poll)


def _rss_mb(pids: list[int]) -> float:
    """Resident memory of the given processes and their children (the forked work horses)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    worst = 0
    for pid in pids:
        family = {pid} | {p for p, pp, _ in rows if pp == pid}
        family |= {p for p, pp, _ in rows if pp in family}
        worst = max(worst, max((rss for p, _, rss in rows if p == pid), default=0)
                    + max((rss for p, pp, rss in rows if p in family and p != pid), default=0))
    return worst / 1024


def part_send(workers: int) -> dict:
    app = create_app()
    with app.app_context(), Children() as children:
        campaign_id, _ = setup(app)
        add_recipients(campaign_id, ROWS)
        pids = [children.worker().pid for _ in range(workers)]
        time.sleep(2.0)  # let the workers boot and subscribe
        peak = 0.0

        def sample():
            nonlocal peak
            peak = max(peak, _rss_mb(pids))

        start = time.perf_counter()
        lifecycle.send(campaign_id, None, ACTOR)
        campaign = wait_final(campaign_id, 600, every_second=sample)
        elapsed = time.perf_counter() - start
        assert (campaign.status, campaign.sent) == ("sent", ROWS), (campaign.status, campaign.sent)
    return {"send_s": elapsed, "worker_rss_mb": peak}


def part_onecall() -> dict:
    """POST /api/v1/notifications with 10,000 targets: time to 202, and to every feed row written."""
    app = create_app()
    client = app.test_client()
    with app.app_context(), Children() as children:
        _, key = setup(app)
        children.worker()
        time.sleep(2.0)
        body = {"templateId": "bench", "targets": [f"t-{i}" for i in range(10_000)], "channel": "in_app",
                "variables": {"firstName": "Ann", "offer": "20%"}}
        start = time.perf_counter()
        response = client.post("/api/v1/notifications", json=body, headers={"Authorization": f"Bearer {key}"})
        accepted = time.perf_counter() - start
        assert response.status_code == 202, response.get_json()
        campaign = wait_final(response.get_json()["id"], 120, poll=0.02)
        delivered = time.perf_counter() - start
        assert campaign.status == "sent", campaign.status
    return {"accepted_s": accepted, "delivered_s": delivered}


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000


def _gunicorn(children: Children) -> str:
    """The web tier exactly as the Procfile runs it (gunicorn.conf.py: WEB_CONCURRENCY processes x
    HERALD_WEB_THREADS threads, 2 x 8 unless set)."""
    port = free_port()
    children.spawn(web_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return base


def _login(base: str) -> dict:
    session = httpx.Client(base_url=base)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', session.get("/login").text).group(1)
    session.post("/login", data={"csrf_token": token, "email": "bench@example.com", "password": "bench-password"})
    return dict(session.cookies)


def _poll_status(base: str, cookies: dict, campaign_id: int, seconds: float) -> list[float]:
    """20 pollers on the status partial until it answers 286 (the send is over)."""
    latencies: list[float] = []
    stop = threading.Event()

    def poll():
        with httpx.Client(base_url=base, cookies=cookies, headers={"HX-Request": "true"}) as c:
            while not stop.is_set():
                start = time.perf_counter()
                response = c.get(f"/campaigns/{campaign_id}/_status")
                latencies.append(time.perf_counter() - start)
                if response.status_code == 286:
                    stop.set()
                time.sleep(0.05)

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(20)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join(timeout=seconds)
    finally:
        stop.set()
    return latencies


def _campaign_page(c: httpx.Client, campaign_id: int) -> float:
    start = time.perf_counter()
    response = c.get(f"/campaigns/{campaign_id}")
    elapsed = time.perf_counter() - start
    assert response.status_code == 200 and "u-000049" in response.text, response.status_code
    return elapsed


def part_load() -> dict:
    """The web tier as the Procfile runs it: 20 pollers on the status partial while 100k in-app
    recipients send (1% of them failing: an image that is not an http(s) URL), the campaign page (first page of
    100k recipients) requested over and over meanwhile, then again once the send is over, with
    its failures, uncached (the final campaign's timeline cache is dropped before each request)."""
    app = create_app()
    with app.app_context(), Children() as children:
        campaign_id, _ = setup(app)
        add_recipients(campaign_id, ROWS)
        db.session.execute(update(Recipient).where(Recipient.campaign_id == campaign_id, Recipient.id % 100 == 7)
                           .values(variables={"firstName": "Ann", "offer": "20%", "banner": "ftp://files.io/1.png"}))
        db.session.commit()
        base = _gunicorn(children)
        children.worker()
        cookies = _login(base)
        sending: list[float] = []
        stop = threading.Event()

        def page_while_sending():
            with httpx.Client(base_url=base, cookies=cookies, timeout=30) as c:
                while not stop.is_set():
                    sending.append(_campaign_page(c, campaign_id))

        lifecycle.send(campaign_id, None, ACTOR)
        send_start = time.perf_counter()
        reader = threading.Thread(target=page_while_sending, daemon=True)
        reader.start()
        try:
            latencies = _poll_status(base, cookies, campaign_id, 600)
        finally:
            stop.set()
            reader.join(timeout=60)
        send_s = time.perf_counter() - send_start
        campaign = wait_final(campaign_id, 60)
        assert campaign.failed >= ROWS // 100 - 1 and campaign.status == "sent", (campaign.status, campaign.failed)
        after: list[float] = []
        with httpx.Client(base_url=base, cookies=cookies, timeout=30) as c:
            for _ in range(100):
                get_redis().delete(f"herald:timeline:{campaign_id}")
                after.append(_campaign_page(c, campaign_id))
    return {"status_p95_ms": _p95(latencies), "status_requests": float(len(latencies)),
            "page_sending_p95_ms": _p95(sending), "page_sending_requests": float(len(sending)),
            "page_p95_ms": _p95(after), "failed": float(campaign.failed), "send_s": send_s}


if __name__ == "__main__":
    main({"csv": part_csv, "send1": lambda: part_send(1), "send2": lambda: part_send(2),
          "load": part_load, "onecall": part_onecall})
