"""Saved segments: a definition (a tree of conditions) validated, compiled to one WHERE clause
over User, counted, and stored with audit rows."""

from __future__ import annotations

from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models.user import Segment


def list_all() -> list[Segment]:
    return list(db.session.scalars(select(Segment).order_by(Segment.name)))
