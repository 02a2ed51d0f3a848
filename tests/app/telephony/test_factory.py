from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from app.settings import Settings
from app.telephony.baresip import BaresipDialer
from app.telephony.demo import DemoDialer
from app.telephony.factory import build_dialer, probe_dialer
from app.telephony.handoff import HandoffDialer
from app.telephony.model import DialerUnavailable, TelephonyError
from tests.app.telephony.softphones import Softphone, free_port


def test_the_settings_pick_the_backend() -> None:
    assert isinstance(build_dialer(Settings(dialer="handoff")), HandoffDialer)
    assert isinstance(build_dialer(Settings(dialer="demo")), DemoDialer)
    assert isinstance(build_dialer(Settings(dialer="baresip")), BaresipDialer)
    with pytest.raises(TelephonyError, match="needs the lead API client"):
        build_dialer(Settings(dialer="server"))


def test_the_test_button_reaches_a_real_softphone(agent_phone: Softphone) -> None:
    settings = Settings(dialer="baresip", baresip_port=agent_phone.ctrl_port)
    text = asyncio.run(probe_dialer(settings))
    assert f"baresip answered at 127.0.0.1:{agent_phone.ctrl_port}" in text
    assert agent_phone.aor in text


def test_the_test_button_says_when_no_softphone_listens() -> None:
    settings = Settings(dialer="baresip", baresip_port=free_port())
    with pytest.raises(DialerUnavailable):
        asyncio.run(probe_dialer(settings, timeout_s=1.0))


@pytest.mark.parametrize(
    ("dialer", "says"),
    [("handoff", "tel: link handler"), ("demo", "demo softphone"), ("server", "lead API")],
)
def test_the_test_button_explains_the_other_backends(dialer: str, says: str) -> None:
    assert says in asyncio.run(probe_dialer(replace(Settings(), dialer=dialer)))
