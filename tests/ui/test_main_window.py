from datetime import UTC, datetime
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.domain.priority import WorkKind
from ui.composition import build_demo_window
from ui.main import main

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 11:00 in Chicago, the store is open


def test_demo_window_shows_a_ranked_live_queue(qtbot: QtBot) -> None:
    window = build_demo_window(lead_count=120, clock=lambda: NOW)
    qtbot.addWidget(window)
    window.show()
    model = window.model
    assert model.rowCount() > 50
    first = model.item_at(0)
    assert first is not None
    assert first.kind is WorkKind.NEW_LEAD  # fresh leads with running clocks come first
    window.select_first()
    html = window.workspace.toHtml()
    assert first.name in html
    assert "Response clock" in html
    assert "in queue" in window.counts_label.text()
    assert window.findChild(type(window.countdown_timer), "countdown_timer") is not None


def test_search_filters_the_queue(qtbot: QtBot) -> None:
    window = build_demo_window(lead_count=120, clock=lambda: NOW)
    qtbot.addWidget(window)
    total = window.model.rowCount()
    target = window.model.item_at(3)
    assert target is not None
    qtbot.keyClicks(window.search, target.name)
    assert 1 <= window.model.rowCount() < total
    assert all(
        target.name.lower() in (window.model.item_at(r).name.lower())  # type: ignore[union-attr]
        for r in range(window.model.rowCount())
    )
    window.search.clear()
    assert window.model.rowCount() == total


def test_screenshot_command_writes_a_png(tmp_path: Path, qtbot: QtBot) -> None:
    target = tmp_path / "queue.png"
    assert main(["--demo", "--leads", "60", "--screenshot", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
