"""The workspace always shows the selected row's lead (or none): never another lead's."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from app.domain.activities import ActivityKind
from tests.ui.conftest import NOW, FakeDialer
from ui.composition import build_preview_window
from ui.main_window import MainWindow


def _window(qtbot: QtBot) -> MainWindow:
    window = build_preview_window(lead_count=40, clock=lambda: NOW, dialer=FakeDialer())
    qtbot.addWidget(window)
    window.resize(1400, 850)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_a_row_whose_lead_is_gone_clears_the_workspace_and_the_last_leads_notes(
    qtbot: QtBot,
) -> None:
    window = _window(qtbot)
    window._select_row(0)
    first = window.current_item()
    assert first is not None and window._detail is not None
    window.notes.setPlainText("Spoke to A's wife: call after 6")
    second = window.model.item_at(1)
    assert second is not None
    source = window._source
    shown = source.detail

    def detail(lead_id: str, now: object) -> object:
        if lead_id == second.lead_id:  # the store says it left the queue
            raise KeyError(lead_id)
        return shown(lead_id, now)

    source.detail = detail  # type: ignore[method-assign]
    window._select_row(1)
    assert window.current_item() == second
    assert window._detail is None  # not the first lead's any more
    assert window.notes.toPlainText() == ""
    assert "no longer in your queue" in window.lead_summary.text()
    assert first.name not in window.lead_card.toHtml()
    assert not window.call_button.isEnabled()
    # a disposition now logs nothing (and surely not the first lead's notes against this row)
    window.log_disposition("no_answer")
    timeline = shown(first.lead_id, NOW).timeline
    assert all(a.kind is not ActivityKind.DISPOSITION for a in timeline)
    # back to the first row: its workspace again
    window._select_row(0)
    assert window._detail is not None and window._detail.lead.id == first.lead_id


def test_a_failed_disposition_shows_the_lead_again_if_it_changed_meanwhile(
    qtbot: QtBot,
) -> None:
    from dataclasses import replace

    window = _window(qtbot)
    window._select_row(0)
    item = window.current_item()
    assert item is not None
    source = window._source
    shown = source.detail
    changed = [False]

    def detail(lead_id: str, now: object) -> object:
        found = shown(lead_id, now)
        if changed[0] and lead_id == item.lead_id:
            return replace(found, next_text="Changed meanwhile")  # type: ignore[type-var]
        return found

    source.detail = detail  # type: ignore[method-assign]

    async def failing() -> None:
        # while it is on its way, the customer's change to this lead arrives
        changed[0] = True
        window.queue_changed((item.lead_id,))
        raise RuntimeError("the server refused it")

    def log_disposition(*args: object, **kwargs: object) -> object:
        return failing()

    window._actions.log_disposition = log_disposition  # type: ignore[method-assign]
    window.log_disposition("no_answer")
    qtbot.waitUntil(lambda: not window._logging, timeout=5000)
    assert window.current_item() is not None
    assert window.current_item().lead_id == item.lead_id  # type: ignore[union-attr]
    assert "Changed meanwhile" in window.lead_summary.text()
