"""Every backend states the Dialer traits the UI relies on (no `getattr` special cases)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.telephony.baresip import BaresipDialer
from app.telephony.demo import DemoDialer
from app.telephony.handoff import HandoffDialer
from app.telephony.model import Dialer, EventHub
from tests.app.telephony.test_server_dialer import Control


@pytest.mark.parametrize(
    "make",
    [HandoffDialer, lambda: DemoDialer(seed=1), BaresipDialer],
    ids=["handoff", "demo", "baresip"],
)
def test_local_backends_log_their_own_calls_and_ignore_the_call_feed(
    make: Callable[[], Dialer],
) -> None:
    dialer = make()
    assert isinstance(dialer, Dialer)
    assert dialer.records_calls is False
    heard = []
    dialer.subscribe(heard.append)
    dialer.on_call_change({"id": "call-1", "state": "ringing"})  # not theirs: ignored
    assert heard == [] and dialer.active_call is None


def test_the_server_dialer_records_its_calls_and_follows_the_call_feed() -> None:
    from app.telephony.server import ServerCallDialer

    dialer = ServerCallDialer(Control())
    assert isinstance(dialer, Dialer)
    assert dialer.records_calls is True


def test_the_protocol_names_both_traits() -> None:
    class Bare:  # a backend without the traits is not a Dialer
        name = "bare"
        reports_state = True
        hub = EventHub()

        async def dial(self, request: object) -> object: ...
        async def hang_up(self, call_id: str | None = None) -> None: ...
        def subscribe(self, listener: object) -> object: ...
        @property
        def active_call(self) -> None: ...
        async def close(self) -> None: ...

    assert not isinstance(Bare(), Dialer)


def test_the_package_names_load_on_first_use() -> None:
    """Importing one submodule (the services' call record) loads no backend; every exported
    name still resolves from the package."""
    import subprocess
    import sys

    code = (
        "import sys, app.telephony.record, app.telephony as t\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('app.telephony.'))\n"
        "assert loaded == ['app.telephony.model', 'app.telephony.record'], loaded\n"
        "assert all(getattr(t, name) is not None for name in t.__all__)\n"
        "assert t.build_dialer.__module__ == 'app.telephony.factory'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
