"""Jobs used by the worker tests: they prove a real worker runs jobs inside the app."""

from sqlalchemy import select

from dashboard.extensions import db
from dashboard.jobs import in_app_context
from dashboard.models import Account


@in_app_context
def account_emails() -> list[str]:
    return sorted(db.session.scalars(select(Account.email)).all())


@in_app_context
def explode() -> None:
    raise RuntimeError("boom from a job")
