"""Call review: the agents' calls with lead, agent, talk time, outcome and recording link, and
the QA scorecard dialog (the guide's six criteria, 1–5 each, with comments)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.services.manager import CRITERIA, CallRecord
from ui.manager.kpis import PERIOD_LABELS, seconds_text
from ui.signals import emit


class ScorecardDialog(QDialog):
    """Score one call; `scores()`, `comments()` and `summary()` once accepted."""

    def __init__(self, call: CallRecord, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.call = call
        self.setWindowTitle(f"QA scorecard — {call.agent_name}, call with {call.customer_name}")
        when = call.at.astimezone().strftime("%a %d %b %H:%M")
        head = QLabel(
            f"<b>{call.agent_name}</b> · {call.customer_name} · {when} · "
            f"talk {seconds_text(call.duration_s)} · {call.outcome}"
        )
        grid = QGridLayout()
        grid.addWidget(QLabel("<b>Criterion</b>"), 0, 0)
        for score in range(1, 6):
            grid.addWidget(QLabel(f"<b>{score}</b>"), 0, score, Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(QLabel("<b>Comment</b>"), 0, 6)
        self._groups: dict[str, QButtonGroup] = {}
        self._comments: dict[str, QLineEdit] = {}
        existing = call.scorecard
        for row, (key, label) in enumerate(CRITERIA, start=1):
            grid.addWidget(QLabel(label), row, 0)
            group = QButtonGroup(self)
            for score in range(1, 6):
                button = QRadioButton()
                button.setAccessibleName(f"{label}: {score}")
                group.addButton(button, score)
                grid.addWidget(button, row, score, Qt.AlignmentFlag.AlignCenter)
            comment = QLineEdit()
            comment.setPlaceholderText("what to keep / what to change")
            if existing is not None:
                chosen = group.button(existing.scores.get(key, 0))
                if chosen is not None:
                    chosen.setChecked(True)
                comment.setText(existing.comments.get(key, ""))
            group.idToggled.connect(lambda _id, _on: self._update())
            grid.addWidget(comment, row, 6)
            self._groups[key] = group
            self._comments[key] = comment
        self.summary_edit = QPlainTextEdit(existing.summary if existing else "")
        self.summary_edit.setPlaceholderText("Overall: coaching notes for the agent")
        self.summary_edit.setMaximumHeight(80)
        self.total = QLabel()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(head)
        layout.addLayout(grid)
        layout.addWidget(self.summary_edit)
        layout.addWidget(self.total)
        layout.addWidget(self.buttons)
        self._update()

    def set_score(self, key: str, score: int) -> None:
        button = self._groups[key].button(score)
        button.setChecked(True)

    def set_comment(self, key: str, text: str) -> None:
        self._comments[key].setText(text)

    def scores(self) -> dict[str, int]:
        return {
            key: group.checkedId() for key, group in self._groups.items() if group.checkedId() > 0
        }

    def comments(self) -> dict[str, str]:
        return {key: edit.text().strip() for key, edit in self._comments.items()}

    def summary(self) -> str:
        return self.summary_edit.toPlainText().strip()

    def _update(self) -> None:
        scores = self.scores()
        complete = len(scores) == len(CRITERIA)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(complete)
        total = sum(scores.values())
        self.total.setText(
            f"Total {total}/{5 * len(CRITERIA)}"
            + ("" if complete else f" — score all {len(CRITERIA)} criteria to save")
        )


class CallsPanel(QWidget):
    """The calls of a period; "Review…" opens the scorecard dialog for the selected call."""

    HEADERS = ("Time", "Agent", "Customer", "Talk", "Outcome", "Recording", "QA")
    changed = Signal(str)  # period
    review_requested = Signal(object)  # CallRecord

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.calls: tuple[CallRecord, ...] = ()
        self.period = QComboBox()
        for key, label in PERIOD_LABELS:
            self.period.addItem(label, key)
        self.review = QPushButton("Review call…")
        self.status = QLabel("")
        bar = QHBoxLayout()
        bar.addWidget(self.period)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.review)
        self.table = QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(self.HEADERS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table)
        self.period.currentIndexChanged.connect(
            lambda _i: emit(self.changed, str(self.period.currentData()))
        )
        self.review.clicked.connect(self._review_selected)
        self.table.cellDoubleClicked.connect(self._double_clicked)

    def selected_period(self) -> str:
        return str(self.period.currentData())

    def show_calls(self, calls: tuple[CallRecord, ...]) -> None:
        self.calls = calls
        self.table.setRowCount(len(calls))
        for row, call in enumerate(calls):
            card = call.scorecard
            values = (
                call.at.astimezone().strftime("%a %H:%M"),
                call.agent_name,
                call.customer_name,
                seconds_text(call.duration_s) if call.answered else "—",
                call.outcome,
                "▶ Play" if call.recording_url else "—",
                f"✔ {card.total}/{card.max}" if card else "Review…",
            )
            for column, text in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(text))
        reviewed = sum(1 for c in calls if c.scorecard)
        self.status.setText(f"{len(calls)} calls · {reviewed} reviewed")

    def selected_call(self) -> CallRecord | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        row = rows[0].row()
        return self.calls[row] if row < len(self.calls) else None

    def _review_selected(self) -> None:
        call = self.selected_call()
        if call is not None:
            emit(self.review_requested, call)

    def _double_clicked(self, row: int, column: int) -> None:
        call = self.calls[row] if row < len(self.calls) else None
        if call is None:
            return
        if column == 5 and call.recording_url:
            QDesktopServices.openUrl(QUrl(call.recording_url))
            return
        emit(self.review_requested, call)
