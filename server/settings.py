"""Server settings, declared once with types and defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import platformdirs


def default_db_url() -> str:
    folder = Path(platformdirs.user_data_dir("bdc-server", "BDC Workstation"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'leads.db'}"


@dataclass(frozen=True)
class Settings:
    db_url: str = field(default_factory=default_db_url)
    token_ttl: timedelta = timedelta(hours=12)
    # Login throttling: this many failures for one username within the window lock it out.
    login_max_failures: int = 5
    login_failure_window: timedelta = timedelta(minutes=15)
    # Duplicates: the same phone or e-mail within this window merges into the existing lead.
    duplicate_window: timedelta = timedelta(days=30)
    max_body_bytes: int = 1_000_000
    change_retention: timedelta = timedelta(days=30)
    # Presence: an agent with no heartbeat for this long is offline (and gets no new leads).
    heartbeat_timeout: timedelta = timedelta(seconds=90)
    # Escalation: reassign a lead untouched this long past its deadline (None: notify only).
    reassign_after: timedelta | None = timedelta(minutes=10)
    sse_heartbeat: timedelta = timedelta(seconds=15)
    scheduler_interval: timedelta = timedelta(seconds=1)
    run_scheduler: bool = True
    # SMS and e-mail gateways: "log" (demo: records, sends nothing), "smtp", "twilio".
    email_gateway: str = "log"
    sms_gateway: str = "log"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "leads@dealer.example"
    twilio_base_url: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    # Shared secret the inbound-SMS webhook must present (X-Webhook-Token header).
    webhook_token: str = ""
    # Messaging and scheduler (server/messaging, server/scheduler.py).
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    # The address Twilio reaches this server at (status callbacks, webhook signatures); "" = none.
    public_base_url: str = ""
    # A claimed job is another process's to retry only after its lease runs out.
    job_lease: timedelta = timedelta(seconds=60)
    job_max_attempts: int = 6
    job_retry_base: timedelta = timedelta(seconds=30)  # doubled after each failed attempt
    # Change feed and SSE (server/hub.py): poll interval for SQLite (PostgreSQL uses LISTEN too),
    # how long a burst of changes is gathered into one poke, the reconnect hint, how often an
    # open stream re-checks its token, and how often old change and idempotency rows are pruned.
    change_poll_interval: timedelta = timedelta(milliseconds=500)
    sse_coalesce: timedelta = timedelta(milliseconds=100)
    sse_retry: timedelta = timedelta(seconds=3)
    sse_recheck: timedelta = timedelta(seconds=60)
    prune_interval: timedelta = timedelta(hours=1)
    # Idempotency (server/idempotency.py): stored responses are kept this long; a request still
    # "in flight" after in_flight_timeout is presumed dead (its process crashed) and may be retried.
    idempotency_retention: timedelta = timedelta(days=2)
    idempotency_in_flight_timeout: timedelta = timedelta(minutes=2)
    # Server-side call control (server/calls): "none", "twilio" (REST Calls API, the twilio_*
    # settings above; the store's phone is the caller id), "ami" (Asterisk Manager Interface)
    # or "demo" (a simulated bridge with realistic odds, for `make demo`).
    call_provider: str = "none"
    # A call the provider stops reporting on is ended by the scheduler: still not answered this
    # long after dialing (or after it started ringing) -> "failed"; answered for longer than
    # call_max_duration -> "lost". The agent's presence goes to wrap-up.
    call_setup_timeout: timedelta = timedelta(minutes=2)
    call_max_duration: timedelta = timedelta(hours=4)
    demo_call_seed: int = 7
    demo_call_speed: float = 1.0  # > 1 compresses the demo provider's rings and talk
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = ""
    ami_secret: str = ""
    ami_context: str = "from-internal"  # where Originate sends the customer's number
    ami_agent_channel: str = "PJSIP/{phone}"  # the agent's device; {phone} is the user's phone
