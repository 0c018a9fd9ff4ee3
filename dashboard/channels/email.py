"""SMTP delivery: STARTTLS/SSL and auth from an smtp URL, one connection per batch,
multipart text+html, a Message-ID stable per (campaign, user)."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from dashboard.channels.base import ChannelUnavailable, Message, Result, call_timeout, reason


def parse_smtp_url(url: str) -> dict:
    """smtp://host:25 (plain), smtp+starttls://user:pass@host:587, smtps://user:pass@host:465."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("smtp", "smtp+starttls", "smtps") or not parts.hostname:
        raise ChannelUnavailable("Email is not configured: set an SMTP URL such as "
                                 "smtp+starttls://user:password@mail.example.com:587.")
    default_port = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}[parts.scheme]
    return {"host": parts.hostname, "port": parts.port or default_port, "mode": parts.scheme,
            "user": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None}


class EmailChannel:
    name = "email"
    transactional = False
    content_key = "email"

    def __init__(self, smtp_url: str, sender: str, timeout: float = 15.0):
        self.server = parse_smtp_url(smtp_url)
        if not sender:
            raise ChannelUnavailable("Email is not configured: set the sender address.")
        self.sender = sender
        self.timeout = timeout
        self.domain = sender.rsplit("@", 1)[-1]
        self._conn: smtplib.SMTP | None = None

    def _connect(self, timeout: float) -> smtplib.SMTP:
        s = self.server
        if s["mode"] == "smtps":
            conn = smtplib.SMTP_SSL(s["host"], s["port"], timeout=timeout, context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(s["host"], s["port"], timeout=timeout)
            if s["mode"] == "smtp+starttls":
                conn.starttls(context=ssl.create_default_context())
        if s["user"]:
            conn.login(s["user"], s["password"] or "")
        return conn

    def build(self, m: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = m.email
        mail["Subject"] = m.content.get("subject", "")
        mail["Date"] = formatdate(localtime=False)
        digest = hashlib.sha256(f"{m.campaign_id}:{m.user_id}".encode()).hexdigest()[:32]
        mail["Message-ID"] = f"<herald.{m.campaign_id}.{digest}@{self.domain}>"
        mail["X-Herald-Idempotency-Key"] = f"{m.campaign_id}:{m.user_id}"
        mail.set_content(m.content.get("text", ""))
        if m.content.get("html"):
            mail.add_alternative(m.content["html"], subtype="html")
        return mail

    def send_batch(self, messages: list[Message], deadline: float | None = None) -> list[Result]:
        """One SMTP connection kept across the batches of a slice (closed by close())."""
        results: list[Result] = []
        for m in messages:
            timeout = call_timeout(self.timeout, deadline)
            if timeout is None:
                results.append(Result(m.recipient_id, "unsent"))
                continue
            if not m.email:
                results.append(Result(m.recipient_id, "permanent", "no email address"))
                continue
            try:
                mail = self.build(m)
                mail.as_bytes()  # a value the message cannot carry fails here, before the server sees it
            except Exception as err:  # noqa: BLE001 - this recipient's data, not the server
                results.append(Result(m.recipient_id, "permanent", reason("could not build the email", err)))
                continue
            results.append(self._send(m, mail, timeout))
        return results

    def _send(self, m: Message, mail: EmailMessage, timeout: float) -> Result:
        try:
            if self._conn is None:
                self._conn = self._connect(timeout)
            elif self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
            self._conn.send_message(mail)
            return Result(m.recipient_id, "sent")
        except smtplib.SMTPRecipientsRefused as err:
            code, text = next(iter(err.recipients.values()))
            return self._result(m, code, text)
        except smtplib.SMTPResponseException as err:
            if err.smtp_code in (421,):
                self._drop()
            return self._result(m, err.smtp_code, err.smtp_error)
        except (smtplib.SMTPException, OSError) as err:
            self._drop()
            return Result(m.recipient_id, "transient", f"SMTP connection problem: {err}"[:300])
        except Exception as err:  # noqa: BLE001 - the connection's state is unknown: start a new one
            self._drop()
            return Result(m.recipient_id, "permanent", reason("could not send the email", err))

    def _drop(self, polite: bool = False) -> None:
        """Forget the connection: QUIT when it is healthy (polite), else just close the socket."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if polite:
                conn.quit()
            else:
                conn.close()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def close(self) -> None:
        self._drop(polite=True)

    @staticmethod
    def _result(m: Message, code: int, reason) -> Result:
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        outcome = "transient" if 400 <= code < 500 else "permanent"
        return Result(m.recipient_id, outcome, f"SMTP {code} {text}"[:300])
