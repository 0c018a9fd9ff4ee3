"""Email click tracking: each http(s) link of a recipient's email points at the signed redirect
`{HERALD_PUBLIC_URL}/c/<token>`, token = [recipient id, url] signed with the app's secret, so
the redirect only ever sends people to a URL Herald itself put in an email (no open redirect).
A click is one `link_clicks` row per (recipient, url); the campaign's clicked_count counts
recipients (unique clickers), as the in-app feed does."""

from __future__ import annotations

import html
import re

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dashboard.channels import Message
from dashboard.extensions import db
from dashboard.models import Campaign, LinkClick, Recipient, utcnow

SALT = "herald-click"
MAX_URL = 2000  # longer URLs are left as they are (the tracked one would be longer still)
HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
TEXT_URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
TRAILING = ".,;:!?)]}'\""  # sentence punctuation after a URL in plain text is not part of it


class BrokenLink(ValueError):
    """The token was not made by this Herald (tampered, truncated or signed with another key)."""


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _trackable(url: str) -> bool:
    low = url[:8].lower()
    return low.startswith(("http://", "https://")) and len(url) <= MAX_URL


def token(recipient_id: int, url: str) -> str:
    return _serializer().dumps([recipient_id, url])


def tracked_url(recipient_id: int, url: str) -> str:
    return f"{current_app.config['HERALD_PUBLIC_URL']}/c/{token(recipient_id, url)}"


def read_token(value: str) -> tuple[int, str]:
    """(recipient id, url) from a token, or BrokenLink."""
    try:
        data = _serializer().loads(value)
    except BadData as err:
        raise BrokenLink("bad signature") from err
    if (not isinstance(data, list) or len(data) != 2 or not isinstance(data[0], int) or isinstance(data[0], bool)
            or not isinstance(data[1], str) or not _trackable(data[1])):
        raise BrokenLink("unexpected content")
    return data[0], data[1]


def rewrite_html(text: str, recipient_id: int) -> str:
    """Every href="http(s)://…" (mailto:, #anchors, relative and over-long URLs untouched)."""
    def swap(m: re.Match) -> str:
        url = html.unescape(m.group(3)).strip()
        if not _trackable(url):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{html.escape(tracked_url(recipient_id, url))}{m.group(2)}"
    return HREF.sub(swap, text)


def rewrite_text(text: str, recipient_id: int) -> str:
    """Every http(s) URL in plain text (trailing sentence punctuation stays outside the link)."""
    def swap(m: re.Match) -> str:
        url = m.group(0)
        stripped = url.rstrip(TRAILING)
        tail = url[len(stripped):]
        if not _trackable(stripped) or "://" not in stripped[:8] or len(stripped) <= len("https://"):
            return url
        return tracked_url(recipient_id, stripped) + tail
    return TEXT_URL.sub(swap, text)


def rewrite(messages: list[Message]) -> None:
    """In place, for a campaign's email messages (the caller decides whether the campaign tracks)."""
    for m in messages:
        if m.test:
            continue
        content = dict(m.content)
        if content.get("html"):
            content["html"] = rewrite_html(content["html"], m.recipient_id)
        if content.get("text"):
            content["text"] = rewrite_text(content["text"], m.recipient_id)
        m.content = content


def _insert():
    return (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(LinkClick)


def record(recipient_id: int, url: str) -> bool:
    """Store a click; True when it was this recipient's first click on this link. The recipient
    row is locked first, so two first clicks of one recipient (two links at once) still bump
    the campaign's unique-clicker count exactly once. A recipient that is gone records nothing."""
    stmt = select(Recipient.campaign_id, Recipient.user_id).where(Recipient.id == recipient_id)
    if db.engine.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = db.session.execute(stmt).first()
    if row is None:
        db.session.rollback()
        return False
    inserted = db.session.execute(
        _insert().values(campaign_id=row.campaign_id, recipient_id=recipient_id, user_id=row.user_id, url=url,
                         clicked_at=utcnow())
        .on_conflict_do_nothing(index_elements=["recipient_id", "url"]).returning(LinkClick.id)).first() is not None
    if inserted:
        clicks = db.session.scalar(select(func.count()).select_from(LinkClick)
                                   .where(LinkClick.recipient_id == recipient_id))
        if clicks == 1:
            db.session.execute(update(Campaign).where(Campaign.id == row.campaign_id)
                               .values(clicked_count=Campaign.clicked_count + 1)
                               .execution_options(synchronize_session=False))
    db.session.commit()
    return inserted
