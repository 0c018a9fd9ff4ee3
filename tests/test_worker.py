import os
import subprocess
import sys
from pathlib import Path

from rq.job import Job, JobStatus

from dashboard.extensions import QUEUE_NAMES, get_queue, get_redis

ROOT = Path(__file__).resolve().parent.parent


def run_burst_worker(app) -> subprocess.CompletedProcess:
    """The worker command from the Procfile, in burst mode, against the test services."""
    env = dict(os.environ, HERALD_ENV="testing", SECRET_KEY="test-secret-key",
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=app.config["REDIS_URL"])
    rq = Path(sys.executable).parent / "rq"
    return subprocess.run(
        [str(rq), "worker", "--burst", "--with-scheduler", "-c", "dashboard.rq_settings",
         "-w", "dashboard.worker.HeraldWorker", *QUEUE_NAMES],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_procfile_worker_runs_jobs_inside_the_app(app, make_account):
    make_account("marketer", email="a@example.com")
    make_account("support", email="b@example.com")
    job = get_queue("default").enqueue("tests.job_probes.account_emails")
    proc = run_burst_worker(app)
    assert proc.returncode == 0, proc.stderr
    job = Job.fetch(job.id, connection=get_redis())
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == ["a@example.com", "b@example.com"]


def test_failing_job_is_recorded_as_failed(app):
    job = get_queue("batch").enqueue("tests.job_probes.explode")
    proc = run_burst_worker(app)
    assert proc.returncode == 0, proc.stderr
    job = Job.fetch(job.id, connection=get_redis())
    assert job.get_status() == JobStatus.FAILED
    assert "boom from a job" in (job.latest_result().exc_string or "")


def test_procfile_declares_web_worker_release():
    procfile = (ROOT / "Procfile").read_text()
    assert "web: gunicorn -c gunicorn.conf.py wsgi:app" in procfile  # the settings production runs
    assert "rq worker --with-scheduler" in procfile and "realtime batch default" in procfile
    assert "release: flask --app wsgi db upgrade" in procfile
