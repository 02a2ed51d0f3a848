"""Funnel KPIs by agent or source for today / this week / this month, against the guide's
benchmarks, with trend charts drawn by pyqtgraph (MIT; Qt Charts is GPL and deprecated)."""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.services.manager import BENCHMARKS, RESPONSE_TARGET_S, Funnel, KpiReport, kpi_csv
from ui.signals import emit
from ui.theme import current_colors

PERIOD_LABELS = (("today", "Today"), ("week", "This week"), ("month", "This month"))
GROUP_LABELS = (("agent", "By agent"), ("source", "By source"))
COLUMNS = (
    ("Leads", None),
    ("Median resp.", None),
    ("P90 resp.", None),
    ("Met deadline", None),
    ("Contact", "contact_rate"),
    ("Appt", "appointment_rate"),
    ("Show", "show_rate"),
    ("Close", "close_rate"),
)


def seconds_text(value: float | None) -> str:
    if value is None:
        return "—"
    seconds = round(value)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def rate_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


class KpiPanel(QWidget):
    """Period and grouping pickers, the KPI table, two trend charts and CSV export."""

    changed = Signal(str, str)  # period, group_by: the window fetches and calls show_report

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: KpiReport | None = None
        self.save_path: Callable[[str], str] | None = None  # tests answer the file dialog
        self.period = QComboBox()
        for key, label in PERIOD_LABELS:
            self.period.addItem(label, key)
        self.group = QComboBox()
        for key, label in GROUP_LABELS:
            self.group.addItem(label, key)
        self.export = QPushButton("Export CSV…")
        self.status = QLabel("")
        self.status.setObjectName("kpiStatus")
        bar = QHBoxLayout()
        bar.addWidget(self.period)
        bar.addWidget(self.group)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.export)

        self.table = QTableWidget(0, len(COLUMNS) + 1)
        self.table.setHorizontalHeaderLabels(["", *(c for c, _ in COLUMNS)])
        # Response times are raw; the deadline allows for after-hours arrivals (due 30 min after
        # opening), so a slow median and a full "met deadline" share can both be true.
        deadline = self.table.horizontalHeaderItem(4)
        if deadline is not None:
            deadline.setToolTip(
                "Share of leads whose first agent attempt met the response deadline: 5 minutes "
                "in business hours, 30 minutes after opening for leads that came in after hours"
            )
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(
            0, QHeaderView.ResizeMode.ResizeToContents
        )

        pg.setConfigOptions(antialias=True)
        colors = current_colors()
        background = "#202124" if colors.dark else "w"
        foreground = "#e0e0e0" if colors.dark else "#333333"
        self.volume_chart = pg.PlotWidget(background=background)
        self.rates_chart = pg.PlotWidget(background=background)
        for chart, title in (
            (self.volume_chart, "Leads received per day"),
            (self.rates_chart, "Funnel rates per day vs benchmark (%)"),
        ):
            chart.setTitle(title, color=foreground, size="10pt")
            chart.showGrid(x=False, y=True, alpha=0.2)
            chart.setMinimumHeight(170)
            chart.getPlotItem().setMenuEnabled(False)
            chart.setMouseEnabled(x=False, y=False)
        charts = QHBoxLayout()
        charts.addWidget(self.volume_chart)
        charts.addWidget(self.rates_chart)

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table, 3)
        layout.addLayout(charts, 2)

        self.period.currentIndexChanged.connect(self._changed)
        self.group.currentIndexChanged.connect(self._changed)
        self.export.clicked.connect(self.export_csv)

    def selection(self) -> tuple[str, str]:
        return str(self.period.currentData()), str(self.group.currentData())

    def _changed(self, _index: int) -> None:
        emit(self.changed, *self.selection())

    # Showing a report

    def show_report(self, report: KpiReport | None) -> None:
        if report is None:
            self.status.setText("KPIs not loaded yet — waiting for the lead API")
            return
        self.report = report
        when = report.fetched_at.astimezone().strftime("%H:%M:%S")
        self.status.setText(
            f"⚠ Offline — figures as of {when}" if report.stale else f"Updated {when}"
        )
        rows: list[tuple[str, Funnel | None]] = [(f.label, f) for f in report.groups]
        rows.append(("Total", report.total))
        rows.append(("Benchmark", None))
        self.table.setRowCount(len(rows))
        colors = current_colors()
        for row, (label, funnel) in enumerate(rows):
            head = QTableWidgetItem(label)
            if funnel is report.total or funnel is None:
                font = head.font()
                font.setBold(True)
                head.setFont(font)
            self.table.setItem(row, 0, head)
            if funnel is None:
                values = [
                    "",
                    seconds_text(RESPONSE_TARGET_S),
                    "",
                    "",
                    *(rate_text(BENCHMARKS[key]) for _, key in COLUMNS[4:] if key),
                ]
            else:
                values = [
                    str(funnel.leads),
                    seconds_text(funnel.response_median_s),
                    seconds_text(funnel.response_p90_s),
                    rate_text(funnel.within_5_min_rate),
                    rate_text(funnel.contact_rate),
                    rate_text(funnel.appointment_rate),
                    rate_text(funnel.show_rate),
                    rate_text(funnel.close_rate),
                ]
            for column, text in enumerate(values, start=1):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                key = COLUMNS[column - 1][1]
                if funnel is not None and key is not None:
                    value = getattr(funnel, key)
                    if value is not None:
                        good = value >= BENCHMARKS[key]
                        item.setForeground(QBrush(QColor(colors.green if good else colors.red)))
                        item.setText(f"{'▲' if good else '▼'} {text}")
                if funnel is not None and column == 2 and funnel.response_median_s is not None:
                    good = funnel.response_median_s <= RESPONSE_TARGET_S
                    item.setForeground(QBrush(QColor(colors.green if good else colors.red)))
                self.table.setItem(row, column, item)
        self._draw_trend(report)

    def _draw_trend(self, report: KpiReport) -> None:
        colors = current_colors()
        days = list(report.trend)
        xs = list(range(len(days)))
        ticks = [[(i, f.key[5:]) for i, f in enumerate(days)]]
        volume = self.volume_chart
        volume.clear()
        volume.getAxis("bottom").setTicks(ticks)
        if days:
            bars = pg.BarGraphItem(
                x=xs, height=[f.leads for f in days], width=0.6, brush=colors.blue
            )
            volume.addItem(bars)
        rates = self.rates_chart
        rates.clear()
        rates.getAxis("bottom").setTicks(ticks)
        rates.setYRange(0, 100)
        if not days:
            return
        rates.addLegend(offset=(5, 5))
        within = [(f.within_5_min_rate or 0) * 100 for f in days]
        rates.plot(
            xs, within, pen=pg.mkPen(colors.muted, width=2), symbol="s", symbolSize=5,
            symbolBrush=colors.muted, name="≤5 min",
        )  # fmt: skip
        palette = {
            "contact_rate": (colors.blue, "Contact"),
            "appointment_rate": (colors.green, "Appt"),
            "show_rate": (colors.orange, "Show"),
            "close_rate": (colors.red, "Close"),
        }
        for key, (color, name) in palette.items():
            ys = [(getattr(f, key) or 0) * 100 for f in days]
            rates.plot(
                xs, ys, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=5,
                symbolBrush=color, name=name,
            )  # fmt: skip
            rates.addItem(
                pg.InfiniteLine(
                    pos=BENCHMARKS[key] * 100,
                    angle=0,
                    pen=pg.mkPen(color, width=1, style=Qt.PenStyle.DashLine),
                )
            )

    # CSV

    def export_csv(self) -> str | None:
        if self.report is None:
            return None
        period, group = self.report.period, self.report.group_by
        suggested = f"bdc-kpis-{period}-by-{group}.csv"
        if self.save_path is not None:
            path = self.save_path(suggested)
        else:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export KPIs", suggested, "CSV files (*.csv)"
            )
        if not path:
            return None
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(kpi_csv(self.report))
        self.status.setText(f"Exported to {path}")
        return path
