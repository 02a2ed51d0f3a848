"""E-mail through an SMTP server (the dealership's relay, or a submission port with login)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from server.messaging.gateways import GatewayRefused, GatewayUnavailable


class SmtpGateway:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        timeout_s: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout_s = timeout_s

    def send(self, to: str, body: str, subject: str | None = None) -> str:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject or ""
        message["Date"] = formatdate(localtime=False, usegmt=True)
        domain = self.sender.rpartition("@")[2] or None
        message_id = make_msgid(domain=domain)
        message["Message-ID"] = message_id
        message.set_content(body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as client:
                if self.starttls:
                    client.starttls(context=ssl.create_default_context())
                if self.username:
                    client.login(self.username, self.password)
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            # Wrong credentials are a setup problem, not this message's: keep it queued.
            raise GatewayUnavailable(
                f"mail server refused our login ({exc.smtp_code}): check the SMTP settings"
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()), (550, b"recipient refused"))
            raise _by_code(code, reason, f"recipient {to} refused") from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, auth failed
            raise _by_code(exc.smtp_code, exc.smtp_error, "the mail server refused") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise GatewayUnavailable(
                f"mail server {self.host}:{self.port} unreachable: {exc}"
            ) from exc
        return message_id.strip("<>")


def _by_code(code: int, reply: bytes | str, what: str) -> Exception:
    """5xx replies are final; 4xx ask us to come back later (greylisting, full queues)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    if 500 <= code < 600:
        return GatewayRefused(f"smtp_{code}", f"{what}: {text}")
    return GatewayUnavailable(f"{what} for now ({code} {text})")
