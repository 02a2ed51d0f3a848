"""A write cut off mid-body (the workstation killed, or the network lost, while sending) must not
use up its Idempotency-Key: the complete retry with the same key is taken as the first request.

Found by test_crashes: the server hashed and ran the truncated body, stored its 422 under the key,
and answered every complete retry "already used for a different request" — the action was lost.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.app.sync.live import LiveServer


def test_a_request_cut_off_mid_body_leaves_its_key_free_for_the_retry(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "server.db")
    live.start()
    try:
        lead_id = live.post_lead("Partial")
        token = live.token("ana")
        activity_id = str(uuid.uuid4())
        body = json.dumps(
            {
                "id": activity_id,
                "lead_id": lead_id,
                "kind": "note",
                "at": datetime.now(UTC).isoformat(),
                "body": "cut off on the wire",
            }
        ).encode()
        head = (
            f"POST /v1/activities HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nIdempotency-Key: {activity_id}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(head + body[: len(body) // 2])
            time.sleep(0.2)
        time.sleep(0.3)  # the server sees the disconnect
        response = httpx.post(
            f"{live.base_url}/v1/activities",
            content=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": activity_id,
                "Content-Type": "application/json",
            },
            timeout=10,
        )
        assert response.status_code in (200, 201), response.text
        assert live.activity_ids(lead_id) == [activity_id]
    finally:
        live.close()
