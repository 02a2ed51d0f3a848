"""Text and email composers: template picker, live merge, segment counter, compliance banner.

Compliance is asked at the moment it matters — when the lead is shown, every few seconds while
it is, and again at the click on Send — through the injected `LeadActions.check_contact`.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.domain.compliance import ContactDecision
from app.domain.leads import Channel
from app.domain.sms import SmsEncoding, sms_segments
from app.services.actions import ActionResult
from app.services.workqueue import LeadDetail
from ui import asyncs
from ui.content import LeadContent, TemplateChoice
from ui.ports import Clock, LeadActions
from ui.signals import emit
from ui.theme import Colors, current_colors
from ui.workspace import render_thread_html

_NOUN = {Channel.TEXT: "text", Channel.EMAIL: "email"}


def counter_text(body: str) -> str:
    """'GSM-7 · 142 / 160 · 1 segment' — what the counter under the text box says."""
    info = sms_segments(body)
    plural = "segment" if info.segments == 1 else "segments"
    text = (
        f"{info.encoding.value} · {info.characters} chars · {info.segments} {plural} "
        f"· {info.remaining_in_segment} left in this segment"
    )
    if info.encoding is SmsEncoding.UCS_2 and info.non_gsm:
        shown = " ".join(info.non_gsm[:5])
        text += f" · UCS-2 because of: {shown}"
    return text


def block_text(decision: ContactDecision, channel: Channel, zone_time: datetime) -> str:
    """'✖ Can't text now — quiet hours: …. Allowed again 8:00 AM their time.'"""
    text = f"✖ Can't {_NOUN.get(channel, 'contact')} now — {decision.message}."
    if decision.next_allowed_at is not None:
        local = decision.next_allowed_at.astimezone(zone_time.tzinfo)
        day = "" if local.date() == zone_time.date() else f"{local:%a %b} {local.day}, "
        clock = local.strftime("%I:%M %p").lstrip("0")
        text += f" Allowed again {day}{clock} their time."
    else:
        text += " Sending stays blocked until that changes."
    return text


class Composer(QWidget):
    sent = Signal(object)  # ActionResult of a successful send

    def __init__(
        self,
        channel: Channel,
        actions: LeadActions,
        content: LeadContent,
        clock: Clock,
        parent: QWidget | None = None,
        *,
        colors: Colors | None = None,
    ) -> None:
        super().__init__(parent)
        self.channel = channel
        self._actions = actions
        self._content = content
        self._clock = clock
        self._colors = colors or current_colors()
        self._detail: LeadDetail | None = None
        self._choices: list[TemplateChoice] = []
        self.decision: ContactDecision | None = None
        self._check_when_shown = False  # the lead changed while this tab was not shown
        self._render_when_shown = False  # ... and its thread and templates wait too
        self._new_lead = True  # since the last render: the draft and template start over
        noun = _NOUN[channel]

        self.thread = QTextBrowser()
        self.thread.setObjectName(f"{noun}_thread")
        self.thread.setOpenLinks(False)

        self.banner = QLabel()
        self.banner.setObjectName(f"{noun}_compliance_banner")
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.PlainText)
        self.banner.setStyleSheet(
            f"background:{self._colors.banner_bad};color:{self._colors.banner_text};"
            f"border:2px solid {self._colors.red};border-radius:4px;padding:6px;font-weight:bold"
        )
        self.banner.hide()

        self.picker = QComboBox()
        self.picker.setObjectName(f"{noun}_template_picker")
        self.picker.setToolTip("Template (Ctrl+T): ★ marks the ones for this lead's next step")
        self.picker.currentIndexChanged.connect(self._template_chosen)
        picker_row = QHBoxLayout()
        label = QLabel("&Template:")
        label.setBuddy(self.picker)
        picker_row.addWidget(label)
        picker_row.addWidget(self.picker, 1)

        self.subject = QLineEdit()
        self.subject.setPlaceholderText("Subject")
        self.subject.setVisible(channel is Channel.EMAIL)

        self.body = QPlainTextEdit()
        self.body.setObjectName(f"{noun}_body")
        self.body.setPlaceholderText(f"Write a {noun}, or pick a template")
        self.body.textChanged.connect(self._body_changed)

        self.counter = QLabel()
        self.counter.setObjectName(f"{noun}_counter")
        self.missing = QLabel()
        self.missing.setStyleSheet(f"color:{self._colors.red}")
        self.missing.setWordWrap(True)
        self.missing.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)

        self.send_button = QPushButton(f"Send {noun}  (Ctrl+Enter)")
        self.send_button.setObjectName(f"send_{noun}")
        self.send_button.clicked.connect(self.send)
        bottom = QHBoxLayout()
        bottom.addWidget(self.counter, 1)
        bottom.addWidget(self.send_button)

        editor = QWidget()
        editor_layout = QVBoxLayout(editor)
        editor_layout.setContentsMargins(0, 0, 0, 0)
        editor_layout.addWidget(self.banner)
        editor_layout.addLayout(picker_row)
        editor_layout.addWidget(self.subject)
        editor_layout.addWidget(self.body, 1)
        editor_layout.addWidget(self.missing)
        editor_layout.addLayout(bottom)
        editor_layout.addWidget(self.status)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.thread)
        split.addWidget(editor)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)
        self._body_changed()

    # -- lead

    def set_lead(self, detail: LeadDetail | None) -> None:
        """Show this lead's thread, templates and rules. While the composer is not shown (its
        tab is not the current one) that waits until it is: the agent moving through the queue
        pays only for what is on screen. A draft stays while the lead stays the same."""
        if detail is None or self._detail is None or detail.lead.id != self._detail.lead.id:
            self._new_lead = True
        self._detail = detail
        if detail is None:
            self._render_when_shown = False
            self.thread.clear()
            self.picker.clear()
            self.body.clear()
            self.decision = None
            self._show_decision()
            return
        if not self.isVisible():
            self._render_when_shown = True
            self.decision = None  # not known yet (and not the previous lead's)
            self._show_decision()
            return
        self._render(detail)

    def _render(self, detail: LeadDetail) -> None:
        same_lead = not self._new_lead
        self._new_lead = self._render_when_shown = False
        self.thread.setHtml(render_thread_html(detail, self.channel, self._colors))
        self.thread.moveCursor(QTextCursor.MoveOperation.End)
        if not same_lead:
            self.status.clear()
            self._choices = self._content.templates_for(detail, self.channel)
            self.picker.blockSignals(True)
            self.picker.clear()
            self.picker.addItem("— no template —")
            for choice in self._choices:
                star = "★ " if choice.suggested else ""
                self.picker.addItem(f"{star}{choice.template.name}")
            self.picker.blockSignals(False)
            self.body.clear()
            self.subject.clear()
            suggested = next((i for i, c in enumerate(self._choices) if c.suggested), None)
            if suggested is not None:
                self.picker.setCurrentIndex(suggested + 1)
            else:
                self.picker.setCurrentIndex(0)
        self.refresh_compliance()

    def refresh_compliance(self) -> None:
        """Check the rules for this lead and channel now. While the composer is not shown (its
        tab is not the current one) the check waits until it is: sending checks again anyway."""
        if self._detail is None:
            return
        if not self.isVisible():
            if not self._check_when_shown:
                self._check_when_shown = True
                self.decision = None  # not known yet (and not the previous lead's)
                self._show_decision()
            return
        self._check()

    def _check(self) -> None:
        assert self._detail is not None
        self._check_when_shown = False
        self.decision = self._actions.check_contact(self._detail.lead.id, self.channel)
        self._show_decision()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._render_when_shown and self._detail is not None:
            self._render(self._detail)
        elif self._check_when_shown:
            self.refresh_compliance()

    def _show_decision(self) -> None:
        decision = self.decision
        if decision is None or decision.allowed:
            self.banner.hide()
            self.banner.clear()
        else:
            assert self._detail is not None
            zone_time = self._detail.zone.local_time(self._clock())
            self.banner.setText(block_text(decision, self.channel, zone_time))
            self.banner.show()
        self._update_send_enabled()

    def blocked(self) -> bool:
        return self.decision is not None and not self.decision.allowed

    def _update_send_enabled(self) -> None:
        has_text = bool(self.body.toPlainText().strip())
        self.send_button.setEnabled(self._detail is not None and has_text and not self.blocked())

    # -- editing

    def _template_chosen(self, index: int) -> None:
        if self._detail is None or index <= 0 or index > len(self._choices):
            return
        rendered = self._content.render(self._detail, self._choices[index - 1].template)
        if rendered.subject is not None:
            self.subject.setText(rendered.subject.text)
        self.body.setPlainText(rendered.body.text)
        if rendered.missing:
            names = ", ".join(m.replace("_", " ") for m in rendered.missing)
            self.missing.setText(f"⚠ Fill in before sending: {names} (shown as [..?])")
            self.missing.show()
        else:
            self.missing.hide()

    def _body_changed(self) -> None:
        body = self.body.toPlainText()
        if self.channel is Channel.TEXT:
            self.counter.setText(counter_text(body))
        else:
            self.counter.setText(f"{len(body)} characters")
        if "?]" not in body:
            self.missing.hide()
        self._update_send_enabled()

    def focus_picker(self) -> None:
        self.picker.setFocus()
        self.picker.showPopup()

    # -- sending

    def send(self) -> bool:
        """Send what is written (after checking the rules again); False when refused here.
        The result (sent, "will send when online", or the server-side reason) shows below."""
        if self._detail is None:
            return False
        if self._render_when_shown:  # never a draft written for another lead
            self._render(self._detail)
        self._check()  # the rules apply at the moment of the click
        if self.blocked():
            self.status.setText("Not sent: blocked by the rules above.")
            return False
        body = self.body.toPlainText()
        if "?]" in body or "?]" in self.subject.text():
            self.status.setText("Not sent: fill in the [..?] fields first.")
            return False
        index = self.picker.currentIndex()
        template_id = self._choices[index - 1].template.id if index > 0 else None
        lead_id = self._detail.lead.id
        if self.channel is Channel.TEXT:
            pending = self._actions.send_text(lead_id, body, template_id=template_id)
        else:
            pending = self._actions.send_email(
                lead_id, self.subject.text(), body, template_id=template_id
            )
        self.send_button.setEnabled(False)
        self.status.setText("Sending…")
        asyncs.run(
            pending,
            self._sent,
            lambda error: self._sent(ActionResult(False, f"Not sent: {error}", lead_id)),
        )
        return True

    def _sent(self, result: ActionResult) -> None:
        self._update_send_enabled()
        color = self._colors.green if result.ok else self._colors.red
        mark = "✔" if result.ok else "✖"
        self.status.setText(f"<span style='color:{color}'>{mark} {escape(result.message)}</span>")
        if result.ok:
            self.body.clear()
            self.subject.clear()
            emit(self.sent, result)
