"""The manager view's core: the live floor board, queue health, KPIs, call review, reassignment.

`ManagerService` reads the lead API's manager routes (GET /v1/floor, /v1/queue-health,
/v1/metrics, /v1/review/calls) and hands out frozen dataclasses. The board is refreshed when the
server pokes (SSE /v1/events: any change of the store, presence included) and every
`poll_interval` seconds besides, so it follows the floor within a second while the stream is up
and within the poll interval when it is not. When the network is down it keeps the last known
board and says how old it is (`ManagerState.age`); it never goes blank. No Qt here.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from app.sync.api import ApiError, LeadApi, NetworkError, Rejected, ServerBusy, SignInExpired

log = logging.getLogger("bdc.manager")

Clock = Callable[[], datetime]

# The guide's benchmarks (lead-management guide, "Benchmarking against industry standards").
BENCHMARKS = {
    "contact_rate": 0.50,
    "appointment_rate": 0.35,
    "show_rate": 0.65,
    "close_rate": 0.30,
}
RESPONSE_TARGET_S = 300
AT_RISK = timedelta(minutes=2)  # a lead this close to its deadline floats up with an alert
PERIODS = ("today", "week", "month")
CRITERIA: tuple[tuple[str, str], ...] = (
    ("greeting", "Greeting & professionalism"),
    ("needs_assessment", "Needs assessment"),
    ("product_knowledge", "Product knowledge"),
    ("objection_handling", "Objection handling"),
    ("appointment_setting", "Appointment setting"),
    ("crm_notes", "CRM notes"),
)


def _when(text: Any) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(str(text))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- What the view shows ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentOnFloor:
    user_id: str
    name: str
    state: str  # available | on_call | wrap_up | paused | offline
    reason: str  # the pause reason
    since: datetime | None
    lead_id: str | None  # on a call: with whom
    customer_name: str
    calls: int
    contacts: int
    appointments: int
    judged: int  # leads whose 5-minute outcome is known today
    met: int

    @property
    def compliance(self) -> float | None:
        return self.met / self.judged if self.judged else None

    def seconds_in_state(self, now: datetime) -> int | None:
        return max(0, int((now - self.since).total_seconds())) if self.since else None

    @property
    def available(self) -> bool:
        return self.state == "available"


@dataclass(frozen=True, slots=True)
class QueueLead:
    lead_id: str
    customer_name: str
    source: str
    received_at: datetime
    due_at: datetime | None
    agent_id: str | None
    agent_name: str
    score: int
    tier: str

    def seconds_left(self, now: datetime) -> int | None:
        return int((self.due_at - now).total_seconds()) if self.due_at else None

    def urgency(self, now: datetime) -> str:
        """breached | at_risk | ok | none (no deadline)."""
        left = self.seconds_left(now)
        if left is None:
            return "none"
        if left <= 0:
            return "breached"
        return "at_risk" if left <= AT_RISK.total_seconds() else "ok"


@dataclass(frozen=True, slots=True)
class Board:
    agents: tuple[AgentOnFloor, ...]
    queue: tuple[QueueLead, ...]
    server_time: datetime
    day: str

    def agent(self, user_id: str) -> AgentOnFloor | None:
        return next((a for a in self.agents if a.user_id == user_id), None)

    def queue_in_order(self, now: datetime) -> tuple[QueueLead, ...]:
        """Breached first (longest overdue first), then at risk, then by deadline."""
        order = {"breached": 0, "at_risk": 1, "ok": 2, "none": 3}
        return tuple(
            sorted(
                self.queue,
                key=lambda q: (order[q.urgency(now)], q.seconds_left(now) or 0, q.received_at),
            )
        )

    def alerts(self, now: datetime) -> tuple[int, int]:
        """(breached, at risk) counts."""
        kinds = [q.urgency(now) for q in self.queue]
        return kinds.count("breached"), kinds.count("at_risk")


@dataclass(frozen=True, slots=True)
class ManagerState:
    board: Board | None  # the last known board (None only before the first answer)
    online: bool
    live: bool  # the SSE stream is up
    error: str  # why the last refresh failed ("" when it worked)
    updated_at: datetime | None  # our clock when the board was last fetched
    signed_out: bool = False

    def age(self, now: datetime) -> timedelta | None:
        return now - self.updated_at if self.updated_at else None


@dataclass(frozen=True, slots=True)
class Funnel:
    key: str
    label: str
    leads: int
    worked: int
    contacted: int
    appointment_set: int
    appointments_due: int
    appointments_kept: int
    shown: int
    sold: int
    sold_of_shown: int
    response_median_s: float | None
    response_p90_s: float | None
    judged: int
    within_5_min: int
    contact_rate: float | None
    appointment_rate: float | None
    show_rate: float | None
    close_rate: float | None
    within_5_min_rate: float | None

    @classmethod
    def from_json(cls, body: dict[str, Any], key: str = "all", label: str = "All") -> Funnel:
        return cls(
            key=str(body.get("key", key)),
            label=str(body.get("label", label)),
            leads=int(body["leads"]),
            worked=int(body["worked"]),
            contacted=int(body["contacted"]),
            appointment_set=int(body["appointment_set"]),
            appointments_due=int(body["appointments_due"]),
            appointments_kept=int(body["appointments_kept"]),
            shown=int(body["shown"]),
            sold=int(body["sold"]),
            sold_of_shown=int(body["sold_of_shown"]),
            response_median_s=body.get("response_median_s"),
            response_p90_s=body.get("response_p90_s"),
            judged=int(body["judged"]),
            within_5_min=int(body["within_5_min"]),
            contact_rate=body.get("contact_rate"),
            appointment_rate=body.get("appointment_rate"),
            show_rate=body.get("show_rate"),
            close_rate=body.get("close_rate"),
            within_5_min_rate=body.get("within_5_min_rate"),
        )


@dataclass(frozen=True, slots=True)
class KpiReport:
    period: str
    group_by: str  # agent | source
    start: datetime
    end: datetime
    total: Funnel
    groups: tuple[Funnel, ...]
    trend: tuple[Funnel, ...]  # by day over the period, oldest first
    fetched_at: datetime
    stale: bool = False  # the network failed: this is the last known report


@dataclass(frozen=True, slots=True)
class Scorecard:
    id: str
    call_id: str
    lead_id: str
    agent_id: str | None
    reviewer: str
    scores: dict[str, int] = field(hash=False)
    comments: dict[str, str] = field(hash=False)
    summary: str
    total: int
    max: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Scorecard:
        return cls(
            id=str(body["id"]),
            call_id=str(body["call_id"]),
            lead_id=str(body["lead_id"]),
            agent_id=body.get("agent_id"),
            reviewer=str(body.get("reviewer") or ""),
            scores={str(k): int(v) for k, v in (body.get("scores") or {}).items()},
            comments={str(k): str(v) for k, v in (body.get("comments") or {}).items()},
            summary=str(body.get("summary") or ""),
            total=int(body.get("total") or 0),
            max=int(body.get("max") or 30),
        )


@dataclass(frozen=True, slots=True)
class CallRecord:
    call_id: str
    lead_id: str
    customer_name: str
    source: str
    agent_id: str
    agent_name: str
    at: datetime
    duration_s: int
    answered: bool
    outcome: str
    recording_url: str | None
    scorecard: Scorecard | None


@dataclass(frozen=True, slots=True)
class ReassignResult:
    moved: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]  # (lead id, why)


def _agent(row: dict[str, Any]) -> AgentOnFloor:
    today = row.get("today") or {}
    compliance = row.get("deadline_compliance") or {}
    lead = row.get("lead") or {}
    return AgentOnFloor(
        user_id=str(row["user_id"]),
        name=str(row.get("display_name") or row.get("username") or row["user_id"]),
        state=str(row.get("state") or "offline"),
        reason=str(row.get("reason") or ""),
        since=_when(row.get("since")),
        lead_id=lead.get("id"),
        customer_name=str(lead.get("customer_name") or ""),
        calls=int(today.get("calls") or 0),
        contacts=int(today.get("contacts") or 0),
        appointments=int(today.get("appointments") or 0),
        judged=int(compliance.get("judged") or 0),
        met=int(compliance.get("met") or 0),
    )


def _queue_lead(row: dict[str, Any]) -> QueueLead:
    received = _when(row.get("received_at"))
    assert received is not None
    return QueueLead(
        lead_id=str(row["lead_id"]),
        customer_name=str(row.get("customer_name") or ""),
        source=str(row.get("source") or ""),
        received_at=received,
        due_at=_when(row.get("due_at")),
        agent_id=row.get("assigned_agent_id"),
        agent_name=str(row.get("assigned_agent_name") or ""),
        score=int(row.get("score") or 0),
        tier=str(row.get("tier") or ""),
    )


def board_from_json(floor: dict[str, Any], queue: dict[str, Any]) -> Board:
    server_time = _when(floor.get("server_time")) or datetime.now(UTC)
    return Board(
        agents=tuple(_agent(a) for a in floor.get("agents") or ()),
        queue=tuple(_queue_lead(q) for q in queue.get("leads") or ()),
        server_time=server_time,
        day=str(floor.get("day") or ""),
    )


def call_from_json(row: dict[str, Any]) -> CallRecord:
    at = _when(row.get("at"))
    assert at is not None
    card = row.get("scorecard")
    return CallRecord(
        call_id=str(row["call_id"]),
        lead_id=str(row["lead_id"]),
        customer_name=str(row.get("customer_name") or ""),
        source=str(row.get("source") or ""),
        agent_id=str(row.get("agent_id") or ""),
        agent_name=str(row.get("agent_name") or ""),
        at=at,
        duration_s=int(row.get("duration_s") or 0),
        answered=bool(row.get("answered")),
        outcome=str(row.get("outcome") or ""),
        recording_url=row.get("recording_url") or None,
        scorecard=Scorecard.from_json(card) if card else None,
    )


def kpi_report_from_json(
    body: dict[str, Any], trend: dict[str, Any] | None, fetched_at: datetime
) -> KpiReport:
    period = body.get("period") or {}
    start, end = _when(period.get("start")), _when(period.get("end"))
    assert start is not None and end is not None
    return KpiReport(
        period=str(period.get("name") or "today"),
        group_by=str(body.get("group_by") or ""),
        start=start,
        end=end,
        total=Funnel.from_json(body["total"]),
        groups=tuple(Funnel.from_json(g) for g in body.get("groups") or ()),
        trend=tuple(
            sorted(
                (Funnel.from_json(g) for g in (trend or {}).get("groups") or ()),
                key=lambda f: f.key,
            )
        ),
        fetched_at=fetched_at,
    )


# --- CSV -----------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


CSV_HEADER = (
    "period",
    "group_by",
    "group",
    "leads",
    "worked",
    "contacted",
    "appointments_set",
    "appointments_due",
    "appointments_kept",
    "shown",
    "sold",
    "response_median_s",
    "response_p90_s",
    "within_5_min_pct",
    "contact_rate_pct",
    "appointment_rate_pct",
    "show_rate_pct",
    "close_rate_pct",
)


def kpi_csv(report: KpiReport) -> str:
    """The report as CSV: one row per group, then the total; rates in percent, benchmarks last."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for funnel in (*report.groups, report.total):
        writer.writerow(
            (
                report.period,
                report.group_by,
                "Total" if funnel is report.total else funnel.label,
                funnel.leads,
                funnel.worked,
                funnel.contacted,
                funnel.appointment_set,
                funnel.appointments_due,
                funnel.appointments_kept,
                funnel.shown,
                funnel.sold,
                _secs(funnel.response_median_s),
                _secs(funnel.response_p90_s),
                _pct(funnel.within_5_min_rate),
                _pct(funnel.contact_rate),
                _pct(funnel.appointment_rate),
                _pct(funnel.show_rate),
                _pct(funnel.close_rate),
            )
        )
    writer.writerow(
        (
            report.period,
            report.group_by,
            "Benchmark",
            *([""] * 8),
            "",
            RESPONSE_TARGET_S,
            "",
            *(f"{BENCHMARKS[k] * 100:.0f}" for k in BENCHMARKS),
        )
    )
    return out.getvalue()


# --- The service ---------------------------------------------------------------------------------


class ManagerService:
    """One signed-in manager's view of the store, kept fresh from the server."""

    def __init__(
        self,
        api: LeadApi,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        poll_interval: float = 10.0,
        reconnect_delay: float = 1.0,
    ) -> None:
        self.api = api
        self._clock = clock
        self.poll_interval = poll_interval
        self.reconnect_delay = reconnect_delay
        self._state = ManagerState(None, online=False, live=False, error="", updated_at=None)
        self._listeners: list[Callable[[ManagerState], None]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._wake = asyncio.Event()
        self._refreshing: asyncio.Lock | None = None
        self._kpis: dict[tuple[str, str], KpiReport] = {}
        self._calls: dict[tuple[str, str], tuple[CallRecord, ...]] = {}
        self._closed = False

    # State

    @property
    def state(self) -> ManagerState:
        return self._state

    def now(self) -> datetime:
        return self._clock()

    def subscribe(self, listener: Callable[[ManagerState], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def _set(self, state: ManagerState) -> None:
        self._state = state
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                log.exception("a manager-view listener failed")

    def _failed(self, exc: ApiError) -> None:
        old = self._state
        self._set(
            ManagerState(
                old.board,
                online=False,
                live=False if isinstance(exc, NetworkError) else old.live,
                error=str(exc),
                updated_at=old.updated_at,
                signed_out=isinstance(exc, SignInExpired),
            )
        )

    # The board

    async def refresh(self) -> ManagerState:
        """Fetch the floor and queue health once; on failure keep the last board and say why."""
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            try:
                floor, queue = await asyncio.gather(self.api.floor(), self.api.queue_health())
            except (NetworkError, ServerBusy, SignInExpired, Rejected) as exc:
                self._failed(exc)
                return self._state
            board = board_from_json(floor, queue)
            old = self._state
            self._set(
                ManagerState(board, online=True, live=old.live, error="", updated_at=self.now())
            )
            return self._state

    async def start(self) -> None:
        """First refresh, then follow the server's pokes and poll as a safety net."""
        await self.refresh()
        self._tasks = [
            asyncio.ensure_future(self._follow_events()),
            asyncio.ensure_future(self._poll()),
        ]

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def poke(self) -> None:
        """Refresh soon (coalesced with other pokes)."""
        self._wake.set()

    async def _poll(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            self._wake.clear()
            await self.refresh()

    async def _follow_events(self) -> None:
        while not self._closed:
            try:
                async for _seq in self.api.events():
                    if not self._state.live:
                        old = self._state
                        self._set(
                            ManagerState(old.board, old.online, True, old.error, old.updated_at)
                        )
                    self.poke()
            except SignInExpired as exc:
                self._failed(exc)
                return
            except ApiError as exc:
                log.info("manager view: live updates stopped: %s", exc)
            old = self._state
            if old.live:
                self._set(ManagerState(old.board, old.online, False, old.error, old.updated_at))
            self.poke()  # something may have changed while the stream was down
            await asyncio.sleep(self.reconnect_delay)

    # KPIs and calls (cached: the last answer stays shown, marked stale, when offline)

    async def kpis(self, period: str = "today", group_by: str = "agent") -> KpiReport | None:
        key = (period, group_by)
        try:
            body, trend = await asyncio.gather(
                self.api.metrics(period, group_by), self.api.metrics(period, "day")
            )
        except (NetworkError, ServerBusy, SignInExpired) as exc:
            self._failed(exc)
            cached = self._kpis.get(key)
            return _stale(cached) if cached else None
        report = kpi_report_from_json(body, trend, self.now())
        self._kpis[key] = report
        return report

    async def calls(
        self, period: str = "today", agent_id: str | None = None
    ) -> tuple[CallRecord, ...]:
        key = (period, agent_id or "")
        try:
            body = await self.api.review_calls(period, agent_id)
        except (NetworkError, ServerBusy, SignInExpired) as exc:
            self._failed(exc)
            return self._calls.get(key, ())
        records = tuple(call_from_json(c) for c in body.get("calls") or ())
        self._calls[key] = records
        return records

    # Actions

    async def reassign(self, lead_ids: Sequence[str], agent_id: str | None) -> ReassignResult:
        """Give each lead to `agent_id` (None: the pool); the board refreshes after."""
        moved: list[str] = []
        failed: list[tuple[str, str]] = []
        for lead_id in lead_ids:
            try:
                await self.api.assign(lead_id, agent_id)
            except ApiError as exc:
                failed.append((lead_id, str(exc)))
            else:
                moved.append(lead_id)
        if moved:
            await self.refresh()
        return ReassignResult(tuple(moved), tuple(failed))

    async def save_scorecard(
        self,
        call_id: str,
        scores: dict[str, int],
        comments: dict[str, str] | None = None,
        summary: str = "",
        *,
        scorecard_id: str | None = None,
    ) -> Scorecard:
        """Save a QA scorecard for a call (a note in the agent's history). Raises ApiError."""
        missing = [label for key, label in CRITERIA if key not in scores]
        if missing:
            raise ValueError(f"score every criterion: {', '.join(missing)}")
        body = {
            "id": scorecard_id or str(uuid.uuid4()),
            "call_id": call_id,
            "scores": scores,
            "comments": {k: v for k, v in (comments or {}).items() if v.strip()},
            "summary": summary,
        }
        card = Scorecard.from_json(await self.api.save_scorecard(body))
        self._calls = {
            key: tuple(
                _with_card(record, card) if record.call_id == call_id else record
                for record in records
            )
            for key, records in self._calls.items()
        }
        return card


def _stale(report: KpiReport) -> KpiReport:
    return KpiReport(
        report.period,
        report.group_by,
        report.start,
        report.end,
        report.total,
        report.groups,
        report.trend,
        report.fetched_at,
        stale=True,
    )


def _with_card(record: CallRecord, card: Scorecard) -> CallRecord:
    return replace(record, scorecard=card)
