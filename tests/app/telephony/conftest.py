from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.telephony.softphones import CUSTOMER, Softphone


@pytest.fixture
def agent_phone(tmp_path: Path) -> Iterator[Softphone]:
    """The agent's softphone, which the workstation drives over ctrl_tcp."""
    phone = Softphone(tmp_path / "agent", "agent", "manual").start()
    try:
        yield phone
    finally:
        phone.stop()


@pytest.fixture
def customer_phone(tmp_path: Path) -> Iterator[Softphone]:
    """The customer's phone: rings until told to answer or reject over its own ctrl_tcp."""
    phone = Softphone(tmp_path / "customer", CUSTOMER.lstrip("+"), "manual").start()
    try:
        yield phone
    finally:
        phone.stop()
