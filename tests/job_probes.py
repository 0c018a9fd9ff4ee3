"""Jobs used by the worker tests: they prove a real worker runs jobs inside the app, and stops
them gracefully."""

import json
import os
import time

from sqlalchemy import select

from dashboard import shutdown
from dashboard.extensions import db, get_redis
from dashboard.jobs import in_app_context
from dashboard.models import Account


@in_app_context
def account_emails() -> list[str]:
    return sorted(db.session.scalars(select(Account.email)).all())


@in_app_context
def explode() -> None:
    raise RuntimeError("boom from a job")


@in_app_context
def stepper(key: str | None = None, seconds: float = 60.0, step: float = 0.1, path: str | None = None) -> str:
    """A long job in small steps, like the sending engine: returns early when its worker asks it
    to stop (dashboard.shutdown). Progress (pid, steps, state) goes to the Redis hash `key`, or to
    the JSON file `path` (for tests that take Redis away)."""

    def record(**fields):
        if key:
            get_redis().hset(key, mapping=fields)
        if path:
            tmp = f"{path}.tmp"
            with open(tmp, "w") as f:
                json.dump(fields, f)
            os.replace(tmp, path)

    deadline = time.monotonic() + seconds
    steps = 0
    record(pid=os.getpid(), steps=steps, state="running")
    while time.monotonic() < deadline:
        if shutdown.requested():
            record(pid=os.getpid(), steps=steps, state="stopped-on-request")
            return "stopped-on-request"
        time.sleep(step)
        steps += 1
        record(pid=os.getpid(), steps=steps, state="running")
    record(pid=os.getpid(), steps=steps, state="completed")
    return "completed"
