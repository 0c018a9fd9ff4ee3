"""Render each recipient's message; a message that cannot be built fails that recipient alone,
with a reason a marketer can act on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dashboard import rendering
from dashboard.channels import Message

# Fields that are one line wherever they end up (a header, a feed title, a URL).
SINGLE_LINE = frozenset({"title", "subject", "imageUrl", "actionUrl"})


class MessageError(ValueError):
    """A recipient's message cannot be sent; the text is the plain reason shown to people."""


def describe(err: BaseException) -> str:
    """A plain, short reason for one recipient's failure."""
    if isinstance(err, MessageError):
        return str(err)
    if isinstance(err, UnicodeError):
        return "a value is not valid Unicode text (it contains an unpaired surrogate)"
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:300] if text else type(err).__name__


def _check(content: Mapping[str, str]) -> None:
    for field, text in content.items():
        if "\x00" in text:
            raise MessageError(f"{field}: a value contains a NUL character")
        if field in rendering.URL_FIELDS and text and not rendering.is_http_url(text):
            raise MessageError(f"{field} is not an http(s) URL")


def build(campaign_id: int, schema: list[dict], defaults: Mapping, content: Mapping[str, str],
          rows: Iterable[tuple], test: bool = False) -> tuple[list[Message], list[tuple[int, str]]]:
    """rows are (recipient id, userId, variables, email) -> (messages, [(recipient id, reason)])."""
    messages: list[Message] = []
    failures: list[tuple[int, str]] = []
    for rid, user_id, variables, email in rows:
        try:
            values, _, _ = rendering.resolve(schema, variables if isinstance(variables, Mapping) else {}, defaults)
            rendered = {field: rendering.render(text, values, html=(field == "html"), single_line=field in SINGLE_LINE)
                        for field, text in content.items()}
            _check(rendered)
            messages.append(Message(rid, campaign_id, user_id, email, rendered, values, test))
        except Exception as err:  # one recipient's bad data must never stop the others
            failures.append((rid, describe(err)))
    return messages, failures
