"""Outbound message gateways behind one interface: give a message to a provider, get its id back.

Every gateway answers `send(to, body, subject=None)` with the provider's message id, or raises:
- GatewayRefused(code, reason): the provider looked at this message and will never deliver it
  (a number that replied STOP, a mailbox that does not exist). Retrying is pointless, and the
  message counts as an attempt that did not happen.
- GatewayUnavailable: the provider could not be reached or asked us to come back later. The
  message stays queued and the scheduler retries it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("bdc.messaging")


class GatewayRefused(Exception):
    """The provider will not deliver this message, whatever we do."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class GatewayUnavailable(Exception):
    """The provider cannot take the message now; try again later."""


class Gateway(Protocol):
    name: str

    def send(self, to: str, body: str, subject: str | None = None) -> str:
        """Hand one message to the provider; its id for the message, or a Gateway* error."""
        ...


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    provider_id: str
    to: str
    body: str
    subject: str | None


class LogGateway:
    """The demo gateway: remembers and logs each message, delivers nothing to anybody."""

    def __init__(self, name: str = "log") -> None:
        self.name = name
        self.sent: list[LoggedMessage] = []
        self._lock = threading.Lock()  # the scheduler and request threads may send at once

    def send(self, to: str, body: str, subject: str | None = None) -> str:
        provider_id = f"log-{uuid.uuid4().hex}"
        with self._lock:
            self.sent.append(LoggedMessage(provider_id, to, body, subject))
        log.info("%s gateway: message %s to %s (%d chars)", self.name, provider_id, to, len(body))
        return provider_id


@dataclass(frozen=True)
class Gateways:
    """The gateway for each channel the server sends on."""

    text: Gateway
    email: Gateway

    def for_channel(self, channel: str) -> Gateway:
        if channel == "text":
            return self.text
        if channel == "email":
            return self.email
        raise ValueError(f"no gateway for channel {channel!r}")
