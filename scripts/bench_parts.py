"""One benchmark part per process (so peak RSS is that part's own); prints one JSON line."""

from __future__ import annotations

import csv
import io
import json
import random
import resource
import sys
import time

from flask_migrate import upgrade
from sqlalchemy import select, text

from dashboard import create_app
from dashboard.extensions import db, get_redis
from dashboard.services import accounts, campaigns, templates
from dashboard.services.actor import Actor

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
    db.session.execute(text("TRUNCATE recipients, campaigns, template_versions, templates, audit_events, "
                            "api_keys, accounts RESTART IDENTITY CASCADE"))
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
        from dashboard.services import uploads

        preview = uploads.validate_upload(campaign_id, io.BytesIO(data))
        start = time.perf_counter()
        outcome = uploads.confirm(campaign_id, preview["token"], ACTOR)
        import_s = time.perf_counter() - start
        assert outcome["imported"] == ROWS
        return {"validate_s": validate_s, "import_s": import_s, "rss_mb": rss_mb,
                "floor_parse_s": floor_parse(data), "floor_copy_s": floor_copy(data),
                "size_mb": len(data) / 1024 / 1024}


def _rss_mb(pids: list[int]) -> float:
    """Resident memory of the given processes and their children (the forked work horses)."""
    import subprocess

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
    import os
    import signal
    import subprocess
    from pathlib import Path

    from dashboard.models import Campaign
    from dashboard.services import lifecycle, recipients

    app = create_app()
    with app.app_context():
        campaign_id, _ = setup(app)
        rows = [(f"u-{i:06d}", {"firstName": "Ann", "offer": "20%"}, None) for i in range(ROWS)]
        recipients.bulk_upsert(campaign_id, rows)
        recipients.recount(db.session.get(Campaign, campaign_id))
        db.session.commit()
        rq = str(Path(sys.executable).parent / "rq")
        procs = [subprocess.Popen([rq, "worker", "-c", "dashboard.rq_settings", "-w", "dashboard.worker.HeraldWorker",
                                   "realtime", "batch", "default"], env=os.environ.copy(), start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
        time.sleep(2.0)  # let the workers boot and subscribe
        try:
            start = time.perf_counter()
            lifecycle.send(campaign_id, None, ACTOR)
            peak, sampled = 0.0, 0.0
            while True:
                db.session.expire_all()
                status = db.session.get(Campaign, campaign_id).status
                if status != "sending":
                    break
                if time.perf_counter() - sampled > 1.0:  # `ps` costs CPU the workers need
                    peak, sampled = max(peak, _rss_mb([p.pid for p in procs])), time.perf_counter()
                if time.perf_counter() - start > 600:
                    raise SystemExit("send did not finish within 10 minutes")
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            campaign = db.session.get(Campaign, campaign_id)
            assert (campaign.status, campaign.sent) == ("sent", ROWS), (campaign.status, campaign.sent)
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                p.wait(timeout=30)
        return {"send_s": elapsed, "worker_rss_mb": peak}


def part_onecall() -> dict:
    """POST /api/v1/notifications with 10,000 targets: time to 202, and to every feed row written."""
    import os
    import signal
    import subprocess
    from pathlib import Path

    from dashboard.models import Campaign

    app = create_app()
    client = app.test_client()
    with app.app_context():
        _, key = setup(app)
        rq = str(Path(sys.executable).parent / "rq")
        proc = subprocess.Popen([rq, "worker", "-c", "dashboard.rq_settings", "-w", "dashboard.worker.HeraldWorker",
                                 "realtime", "batch", "default"], env=os.environ.copy(), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.0)
        try:
            body = {"templateId": "bench", "targets": [f"t-{i}" for i in range(10_000)], "channel": "in_app",
                    "variables": {"firstName": "Ann", "offer": "20%"}}
            start = time.perf_counter()
            response = client.post("/api/v1/notifications", json=body, headers={"Authorization": f"Bearer {key}"})
            accepted = time.perf_counter() - start
            assert response.status_code == 202, response.get_json()
            cid = response.get_json()["id"]
            while True:
                db.session.expire_all()
                if db.session.get(Campaign, cid).status == "sent":
                    break
                if time.perf_counter() - start > 120:
                    raise SystemExit("one-call send did not finish")
                time.sleep(0.02)
            delivered = time.perf_counter() - start
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        return {"accepted_s": accepted, "delivered_s": delivered}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def part_channel(kind: str, workers: int = 1, rate: float = 100_000.0, count: int = 10_000) -> dict:
    """Send `count` recipients over webhook or email to a local sink with `workers` workers."""
    import os
    import signal
    import subprocess
    import urllib.request
    from pathlib import Path

    from dashboard.models import Campaign, Recipient
    from dashboard.services import channel_settings, lifecycle, recipients

    port = _free_port()
    sink = subprocess.Popen([sys.executable, "-m", "scripts.bench_sinks", "http" if kind == "webhook" else "smtp",
                             str(port)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    sink.stdout.readline()
    app = create_app()
    with app.app_context():
        setup(app)
        templates.create({"name": "Mail", "templateId": "mail",
                          "channels": {"email": {"subject": "Hi {{ firstName }}", "text": "{{ offer }} for you"},
                                       "in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}"}},
                          "variableSchema": [{"key": "firstName", "type": "string"},
                                             {"key": "offer", "type": "string"}]}, ACTOR)
        templates.transition("mail", "approve", ACTOR)
        settings = ({"url": f"http://127.0.0.1:{port}/hook", "secret": "bench"} if kind == "webhook"
                    else {"smtpUrl": f"smtp://127.0.0.1:{port}", "sender": "bench@herald.test"})
        channel_settings.update(kind, {"rateLimit": rate, "settings": settings}, ACTOR)
        campaign = campaigns.create({"name": kind, "templateId": "mail", "channel": kind}, ACTOR)
        recipients.bulk_upsert(campaign.id, [(f"r-{i}", {"firstName": "Ann", "offer": "20%"}, f"r{i}@example.com")
                                             for i in range(count)])
        recipients.recount(db.session.get(Campaign, campaign.id))
        db.session.commit()
        rq = str(Path(sys.executable).parent / "rq")
        procs = [subprocess.Popen([rq, "worker", "-c", "dashboard.rq_settings", "-w", "dashboard.worker.HeraldWorker",
                                   "realtime", "batch", "default"], env=os.environ.copy(), start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
        time.sleep(2.0)
        try:
            start = time.perf_counter()
            lifecycle.send(campaign.id, None, ACTOR)
            while True:
                db.session.expire_all()
                c = db.session.get(Campaign, campaign.id)
                if c.status != "sending":
                    break
                if time.perf_counter() - start > 600:
                    raise SystemExit(f"{kind} send did not finish")
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            assert (c.status, c.sent) == ("sent", count), (c.status, c.sent, c.failed, db.session.scalar(
                select(Recipient.last_error).where(Recipient.campaign_id == c.id, Recipient.status == "failed")))
            busiest = None
            if kind == "webhook":
                stamps = sorted(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read()))
                busiest, j = 0, 0
                for i, t in enumerate(stamps):
                    while stamps[j] < t - 1.0:
                        j += 1
                    busiest = max(busiest, i - j + 1)
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                p.wait(timeout=30)
            os.killpg(sink.pid, signal.SIGTERM)
        return {"per_s": count / elapsed, "elapsed_s": elapsed, "busiest_1s": busiest}


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000


def part_load() -> dict:
    """A real gunicorn: 20 pollers on the status partial while 100k in-app recipients send, then
    the campaign page (first page of 100k recipients) requested repeatedly."""
    import os
    import re
    import signal
    import subprocess
    import threading
    from pathlib import Path

    import httpx

    from dashboard.models import Campaign
    from dashboard.services import lifecycle, recipients

    app = create_app()
    with app.app_context():
        campaign_id, _ = setup(app)
        recipients.bulk_upsert(campaign_id, [(f"u-{i:06d}", {"firstName": "Ann", "offer": "20%"}, None)
                                             for i in range(ROWS)])
        recipients.recount(db.session.get(Campaign, campaign_id))
        db.session.commit()
        port = _free_port()
        bin_dir = Path(sys.executable).parent
        web = subprocess.Popen([str(bin_dir / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "8",
                                "-b", f"127.0.0.1:{port}", "wsgi:app"], env=os.environ.copy(), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        worker = subprocess.Popen([str(bin_dir / "rq"), "worker", "-c", "dashboard.rq_settings", "-w",
                                   "dashboard.worker.HeraldWorker", "realtime", "batch", "default"],
                                  env=os.environ.copy(), start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(base + "/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            session = httpx.Client(base_url=base)
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', session.get("/login").text).group(1)
            session.post("/login", data={"csrf_token": token, "email": "bench@example.com",
                                         "password": "bench-password"})
            cookies = dict(session.cookies)
            lifecycle.send(campaign_id, None, ACTOR)
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

            threads = [threading.Thread(target=poll) for _ in range(20)]
            send_start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=600)
            send_s = time.perf_counter() - send_start
            page: list[float] = []
            with httpx.Client(base_url=base, cookies=cookies) as c:
                for _ in range(100):
                    start = time.perf_counter()
                    response = c.get(f"/campaigns/{campaign_id}")
                    page.append(time.perf_counter() - start)
                    assert response.status_code == 200 and "u-000049" in response.text
        finally:
            for proc in (web, worker):
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in (web, worker):
                proc.wait(timeout=30)
        return {"status_p95_ms": _p95(latencies), "status_requests": float(len(latencies)),
                "page_p95_ms": _p95(page), "send_s": send_s}


if __name__ == "__main__":
    parts = {
        "load": part_load, "csv": part_csv, "onecall": part_onecall,
        "send1": lambda: part_send(1), "send2": lambda: part_send(2),
        "webhook": lambda: part_channel("webhook"), "email": lambda: part_channel("email"),
        "throttle": lambda: part_channel("webhook", workers=2, rate=200.0, count=2000),
    }
    result = parts[sys.argv[1]]()
    print(json.dumps(result))
