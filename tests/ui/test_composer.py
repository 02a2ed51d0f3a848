from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.domain.compliance import BlockCode
from app.domain.leads import Channel
from tests.ui.conftest import NOW, FakeDialer
from ui.composer import counter_text
from ui.composition import build_preview_window
from ui.main_window import TAB_LEAD, TAB_TEXT

CHICAGO = ZoneInfo("America/Chicago")
LATE = datetime(2026, 11, 25, 21, 30, tzinfo=CHICAGO).astimezone(UTC)


def _window_at(qtbot: QtBot, now: datetime):  # type: ignore[no-untyped-def]
    window = build_preview_window(lead_count=120, clock=lambda: now, dialer=FakeDialer())
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    return window


def _textable_lead_in_chicago(window, now: datetime, *, blocked_by: BlockCode | None):  # type: ignore[no-untyped-def]
    for row in range(window.model.rowCount()):
        item = window.model.item_at(row)
        detail = window.queue.detail(item.lead_id, now)
        if detail.zone.primary != "America/Chicago" or detail.lead.text_phone is None:
            continue
        decision = dict(detail.contact)[Channel.TEXT]
        if blocked_by is None and decision.allowed:
            return row, detail
        if blocked_by is not None and blocked_by in decision.codes:
            return row, detail
    raise AssertionError("no suitable lead in the demo data")


def test_compliance_banner_blocks_a_text_at_2130_their_time(qtbot: QtBot) -> None:
    window = _window_at(qtbot, LATE)
    row, detail = _textable_lead_in_chicago(window, LATE, blocked_by=BlockCode.QUIET_HOURS)
    window._select_row(row)
    qtbot.keyClick(window.table, Qt.Key.Key_3, Qt.KeyboardModifier.AltModifier)
    assert window.tabs.currentIndex() == TAB_TEXT
    composer = window.text_composer
    composer.body.setPlainText("Hi, still interested in the car?")
    banner = composer.banner
    assert banner.isVisible()
    assert "quiet hours" in banner.text()
    assert "21:30" in banner.text()  # it is 21:30 their time
    assert "8:00 AM their time" in banner.text()  # and when it opens again
    assert not composer.send_button.isEnabled()
    assert composer.send() is False
    assert window.backend.sent == []  # type: ignore[attr-defined]
    texts = [
        a for a in window.queue.detail(detail.lead.id, LATE).timeline if a.kind.value == "text"
    ]  # type: ignore[attr-defined]
    assert len(texts) == len([a for a in detail.timeline if a.kind.value == "text"])


def test_a_text_goes_out_in_hours_with_template_and_counter(qtbot: QtBot) -> None:
    window = _window_at(qtbot, NOW)
    row, _detail = _textable_lead_in_chicago(window, NOW, blocked_by=None)
    window._select_row(row)
    composer = window.text_composer
    window.tabs.setCurrentIndex(TAB_TEXT)
    assert not composer.banner.isVisible()
    assert composer.picker.count() > 1
    composer.picker.setCurrentIndex(1)
    body = composer.body.toPlainText()
    assert body and "{" not in body  # merge fields filled
    assert "GSM-7" in composer.counter.text() or "UCS-2" in composer.counter.text()
    if "?]" in body:  # a missing merge field blocks sending until filled
        composer.body.setPlainText(body.replace("?]", "]").replace("[", ""))
    qtbot.keyClick(composer.body, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.backend.sent  # type: ignore[attr-defined]
    assert "✔" in composer.status.text()
    assert window.disposition_bar.likely == "text_sent"
    thread = composer.thread.toPlainText()
    assert window.backend.sent[-1].body[:20] in thread  # type: ignore[attr-defined]


def test_counter_says_encoding_and_segments() -> None:
    assert counter_text("hello").startswith("GSM-7 · 5 chars · 1 segment")
    two = counter_text("x" * 161)
    assert "2 segments" in two
    emoji = counter_text("Great 🚗")
    assert emoji.startswith("UCS-2") and "🚗" in emoji


def test_a_hidden_composer_checks_the_rules_once_its_tab_is_shown(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = _window_at(qtbot, LATE)
    row, _detail = _textable_lead_in_chicago(window, LATE, blocked_by=BlockCode.QUIET_HOURS)
    composer = window.text_composer
    actions = composer._actions
    asked: list[Channel] = []
    check = actions.check_contact

    def counting(lead_id: str, channel: Channel) -> object:
        asked.append(channel)
        return check(lead_id, channel)

    monkeypatch.setattr(actions, "check_contact", counting)
    window.tabs.setCurrentIndex(TAB_LEAD)
    window._select_row(row)
    composer.refresh_compliance()  # the periodic re-check: nothing while hidden
    assert Channel.TEXT not in asked
    assert composer.decision is None and not composer.banner.isVisible()
    window.tabs.setCurrentIndex(TAB_TEXT)
    assert asked.count(Channel.TEXT) == 1
    assert composer.banner.isVisible() and "quiet hours" in composer.banner.text()


def test_a_hidden_composer_shows_the_lead_it_was_given_once_shown_and_keeps_a_draft(
    qtbot: QtBot,
) -> None:
    window = _window_at(qtbot, NOW)
    first, _ = _textable_lead_in_chicago(window, NOW, blocked_by=None)
    composer = window.text_composer
    window.tabs.setCurrentIndex(TAB_TEXT)
    window._select_row(first)
    composer.body.setPlainText("my draft")
    window.tabs.setCurrentIndex(TAB_LEAD)
    window._show_workspace(window.model.item_at(first))  # same lead again: the draft stays
    window.tabs.setCurrentIndex(TAB_TEXT)
    assert composer.body.toPlainText() == "my draft"
    other = next(r for r in range(window.model.rowCount()) if r != first)
    window.tabs.setCurrentIndex(TAB_LEAD)
    window._select_row(other)
    assert composer.body.toPlainText() == "my draft"  # hidden: nothing redone yet
    window.tabs.setCurrentIndex(TAB_TEXT)
    assert composer.body.toPlainText() != "my draft"  # another lead: the draft is gone
    assert composer.picker.count() > 1
