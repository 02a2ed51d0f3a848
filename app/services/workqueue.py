"""The agent's work queue: from leads and their histories to ranked work items and lead details.

Plain objects own the data; the Qt model only shows what `items()` returns. Everything a row or
the workspace needs is computed here with the domain rules, once per change to a lead (not per
tick): the countdown itself is derived from `due_at` at paint time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from app.domain.activities import Activity, ActivityKind, Direction
from app.domain.cadence import CadencePlan, PlannedStep, StepChannel, describe_next, plan
from app.domain.clocks import ResponseClocks, response_clocks
from app.domain.compliance import (
    ContactDecision,
    check_contact,
    legal_window_fn,
    opted_out_since,
)
from app.domain.dealership import Dealership
from app.domain.leads import Channel, Lead, LeadStatus
from app.domain.phones import format_for_display
from app.domain.priority import WorkItem, WorkKind
from app.domain.scoring import LeadScore, score_lead
from app.domain.timezones import ZoneResolution, resolve_zones
from app.rulebook import Rulebook
from app.services.ranking import Key, Ranking

LegalWindow = Callable[[Channel, date], tuple[datetime, datetime] | None]
# A customer who wrote or called back should hear from us within this.
REPLY_RESPONSE_TIME = timedelta(minutes=5)
_CLOSED = (LeadStatus.SOLD, LeadStatus.LOST, LeadStatus.DO_NOT_CONTACT)
_STEP_CHANNEL = {
    StepChannel.CALL: Channel.CALL,
    StepChannel.TEXT: Channel.TEXT,
    StepChannel.EMAIL: Channel.EMAIL,
}


@dataclass(frozen=True, slots=True)
class LeadDetail:
    """Everything the lead workspace shows, computed for one moment."""

    lead: Lead
    score: LeadScore
    clocks: ResponseClocks
    zone: ZoneResolution
    customer_time: datetime  # now, in the customer's primary zone
    contact: tuple[tuple[Channel, ContactDecision], ...]
    plan: CadencePlan
    next_text: str  # e.g. "Text #1 in 10 min · call #2 at 4:30 PM their time"
    timeline: tuple[Activity, ...]  # newest first
    phone_display: str


@dataclass
class _Entry:
    lead: Lead
    history: list[Activity]
    score: LeadScore
    zone: ZoneResolution
    item: WorkItem | None
    haystack: str  # lower-case name, phones and vehicle, for search


class WorkQueue:
    """The leads one agent works, kept in memory and re-derived per lead on change."""

    def __init__(self, rules: Rulebook, dealership: Dealership) -> None:
        self._rules = rules
        self._dealership = dealership
        self._hours = replace(rules.hours, time_zone=dealership.time_zone)
        self._entries: dict[str, _Entry] = {}
        self._legal_windows: dict[tuple[str, tuple[str, ...], tuple[str, ...]], LegalWindow] = {}
        # The open items in priority order, kept incrementally (one bisect per changed lead).
        self._ranking = Ranking()
        # Start-up from the cached snapshot: leads shown from it but not derived yet, how to
        # read one on demand, and leads changed since (the background load must not undo them).
        self._provisional: set[str] = set()
        self._fetch: Callable[[str], tuple[Lead, list[Activity]] | None] | None = None
        self._changed_while_loading: set[str] | None = None
        self._lead_count_hint = 0

    def load(self, leads: Iterable[tuple[Lead, list[Activity]]], now: datetime) -> None:
        for lead, history in leads:
            self._entries[lead.id] = self._derive(lead, history, now)
        self._ranking.rebuild(
            (entry.item for entry in self._entries.values() if entry.item is not None), now
        )

    def upsert(self, lead: Lead, history: list[Activity], now: datetime) -> None:
        entry = self._derive(lead, history, now)
        self._entries[lead.id] = entry
        self._provisional.discard(lead.id)
        if self._changed_while_loading is not None:
            self._changed_while_loading.add(lead.id)
        self._ranking.put(lead.id, entry.item, now)

    def remove(self, lead_id: str) -> bool:
        """Take a lead out of the queue (reassigned, claimed by someone else); True if it was in."""
        self._ranking.drop(lead_id)
        if self._changed_while_loading is not None:
            self._changed_while_loading.add(lead_id)
        was_shown = lead_id in self._provisional
        self._provisional.discard(lead_id)
        return self._entries.pop(lead_id, None) is not None or was_shown

    # Start-up: the cached snapshot first, the derivation in the background

    def show_snapshot(
        self,
        items: Iterable[WorkItem],
        now: datetime,
        *,
        leads: int,
        fetch: Callable[[str], tuple[Lead, list[Activity]] | None],
    ) -> None:
        """Rank these cached items before any lead is derived (an empty queue only). Each lead is
        derived later by `derive_loaded`, or at once when asked about (`detail`, `history`,
        `item_for`) through `fetch(lead_id)`. `leads`: how many leads the queue held."""
        if self._entries or len(self._ranking):
            raise RuntimeError("the snapshot is for an empty queue")
        chosen = list(items)
        self._ranking.rebuild(chosen, now)
        self._provisional = {item.lead_id for item in chosen}
        self._fetch = fetch
        self._changed_while_loading = set()
        self._lead_count_hint = leads

    @property
    def loading(self) -> bool:
        """Rows come from the snapshot and the leads are being derived in the background."""
        return self._changed_while_loading is not None

    def derive_loaded(
        self, leads: Iterable[tuple[Lead, list[Activity]]], now: datetime
    ) -> list[str]:
        """Background start-up: derive these leads as read from the store, except those changed
        since the read (sync, an action); returns the ids whose row changed."""
        skip = self._changed_while_loading or set()
        changed: list[str] = []
        for lead, history in leads:
            if lead.id in skip:
                continue
            before = self._ranking.item_of(lead.id)
            self._entries[lead.id] = entry = self._derive(lead, history, now)
            self._provisional.discard(lead.id)
            self._ranking.put(lead.id, entry.item, now)
            if entry.item != before:
                changed.append(lead.id)
        return changed

    def finish_loading(self, loaded: set[str] | None) -> list[str]:
        """The background load is complete: snapshot rows of leads no longer stored leave.
        `loaded` None (the read failed): every row stays, derived when asked about."""
        if loaded is None:
            self._changed_while_loading = None
            return []
        gone = [lead_id for lead_id in self._provisional if lead_id not in loaded]
        for lead_id in gone:
            self._ranking.drop(lead_id)
        self._provisional.clear()
        self._changed_while_loading = None
        self._fetch = None
        return gone

    def _entry(self, lead_id: str) -> _Entry | None:
        """The lead's derived entry; a lead shown from the snapshot is derived now."""
        entry = self._entries.get(lead_id)
        if entry is None and lead_id in self._provisional and self._fetch is not None:
            fetched = self._fetch(lead_id)
            if fetched is None:
                self.remove(lead_id)
                return None
            lead, history = fetched
            now = self._ranking.now
            assert now is not None
            self._entries[lead_id] = entry = self._derive(lead, history, now)
            self._provisional.discard(lead_id)
            if self._changed_while_loading is not None:
                self._changed_while_loading.add(lead_id)  # fresher than the background's read
            self._ranking.put(lead_id, entry.item, now)
        return entry

    def __contains__(self, lead_id: object) -> bool:
        return lead_id in self._entries or lead_id in self._provisional

    def item_for(self, lead_id: str) -> WorkItem | None:
        """The lead's open work item (None: nothing to do now, or not in the queue)."""
        entry = self._entry(lead_id)
        return None if entry is None else entry.item

    def history(self, lead_id: str) -> list[Activity]:
        entry = self._entry(lead_id)
        return [] if entry is None else list(entry.history)

    def __len__(self) -> int:
        known = len(self._entries) + len(self._provisional)
        return max(known, self._lead_count_hint) if self.loading else known

    def items(self, now: datetime, *, search: str = "") -> list[WorkItem]:
        """The open work items in priority order, filtered by `search` (name, phone, vehicle)."""
        return self.ranked(now, search=search)[0]

    def ranked(self, now: datetime, *, search: str = "") -> tuple[list[WorkItem], list[Key]]:
        """`items()` with each item's sort key (`app.services.ranking`): a key object is new
        exactly when its item was re-placed, so a caller can find what changed by identity."""
        items, keys = self._ranking.ranked(now)
        needle = search.strip().lower()
        if not needle:
            return items, keys
        digits = "".join(ch for ch in needle if ch.isdigit())
        entries = self._entries
        chosen = [
            row
            for row, key in enumerate(keys)
            if needle in (haystack := _haystack_of(entries.get(key[3]), items[row]))
            or (len(digits) >= 3 and digits in haystack)
        ]
        return [items[row] for row in chosen], [keys[row] for row in chosen]

    def detail(self, lead_id: str, now: datetime) -> LeadDetail:
        entry = self._entry(lead_id)
        if entry is None:
            raise KeyError(lead_id)
        lead, history = entry.lead, entry.history
        clocks = response_clocks(lead, history, self._hours, self._rules.response_policy, now=now)
        contact = tuple(
            (
                channel,
                check_contact(
                    self._rules.calling_rules, lead, history, channel, now, resolution=entry.zone
                ),
            )
            for channel in (Channel.CALL, Channel.TEXT, Channel.EMAIL)
        )
        phone = lead.primary_phone
        cadence_plan = plan(
            self._rules.cadences.values(),
            lead,
            history,
            now,
            zone=entry.zone.primary_zone,
            legal_window=self._legal_window(entry.zone),
        )
        return LeadDetail(
            lead=lead,
            score=entry.score,
            clocks=clocks,
            zone=entry.zone,
            customer_time=entry.zone.local_time(now),
            contact=contact,
            plan=cadence_plan,
            next_text=describe_next(cadence_plan, entry.zone.primary_zone),
            timeline=tuple(sorted(history, key=lambda a: a.at, reverse=True)),
            phone_display=format_for_display(phone.e164) if phone and phone.e164 else "",
        )

    # Derivation, once per change

    def _derive(self, lead: Lead, history: list[Activity], now: datetime) -> _Entry:
        rules = self._rules
        zone = resolve_zones(lead, rules.zip_table, fallback_zone=self._dealership.time_zone)
        score = score_lead(rules.scoring, lead, self._dealership, history)
        item = self._work_item(lead, history, score, zone, now)
        phones = " ".join(f"{p.raw} {p.e164 or ''}" for p in lead.phones)
        vehicle = lead.vehicle.description if lead.vehicle else ""
        haystack = f"{lead.person.full_name} {phones} {vehicle}".lower()
        # The plan is not kept (half of a lead's derived memory): `detail` plans again.
        return _Entry(lead, history, score, zone, item, haystack)

    def _legal_window(self, zone: ZoneResolution) -> LegalWindow:
        """One cached legal-window function per distinct zone set (most leads share a few).
        Keyed by what `legal_window` reads of the resolution (primary zone, zones, states),
        not the whole resolution, whose notes and candidate details differ per ZIP and phone."""
        key = (zone.primary, zone.zones, zone.states)
        window = self._legal_windows.get(key)
        if window is None:
            window = functools.lru_cache(maxsize=4096)(
                legal_window_fn(self._rules.calling_rules, zone)
            )
            self._legal_windows[key] = window
        return window

    def _work_item(
        self,
        lead: Lead,
        history: list[Activity],
        score: LeadScore,
        zone: ZoneResolution,
        now: datetime,
    ) -> WorkItem | None:
        if lead.status in _CLOSED or lead.duplicate_of:
            return None
        if opted_out_since(lead, history, now) is not None:
            return None
        base = {
            "lead_id": lead.id,
            "score": score.score,
            "tier": score.tier.value,
            "grade": score.grade.value,
            "name": lead.person.full_name,
            "vehicle": lead.vehicle.description if lead.vehicle else "",
            "source": lead.source.name,
        }
        reply = _unanswered_reply(history)
        if reply is not None:
            action = "Reply to text" if reply.kind is ActivityKind.TEXT else "Call back"
            channel = Channel.TEXT if reply.kind is ActivityKind.TEXT else Channel.CALL
            return WorkItem(
                kind=WorkKind.CUSTOMER_REPLY,
                due_at=reply.at + REPLY_RESPONSE_TIME,
                action=action,
                channel=channel,
                detail=f"They wrote: “{reply.body[:80]}”" if reply.body else "",
                **base,
            )
        if not any(a.is_outbound_touch and not a.automatic for a in history):
            clocks = response_clocks(
                lead, history, self._hours, self._rules.response_policy, now=now
            )
            reachable_by_phone = lead.primary_phone is not None
            return WorkItem(
                kind=WorkKind.NEW_LEAD,
                due_at=clocks.due_at,
                action="Call #1" if reachable_by_phone else "Email #1",
                channel=Channel.CALL if reachable_by_phone else Channel.EMAIL,
                detail="First call or personal text starts the relationship."
                if reachable_by_phone
                else "No working phone number: a personal email is the first touch.",
                **base,
            )
        # Planned only here: closed, replied-to and new leads need no cadence plan.
        cadence_plan = plan(
            self._rules.cadences.values(),
            lead,
            history,
            now,
            zone=zone.primary_zone,
            legal_window=self._legal_window(zone),
        )
        step = _next_agent_step(cadence_plan)
        if step is None:
            return None
        kind = WorkKind.FOLLOW_UP
        if step.step_index == -1:
            kind = WorkKind.CALLBACK
        elif cadence_plan.cadence_id == "appointment_set":
            kind = WorkKind.APPOINTMENT
        return WorkItem(
            kind=kind,
            due_at=step.late_since or step.due_at,
            action=_action_text(step),
            channel=_STEP_CHANNEL.get(step.channel),
            detail=step.reason,
            **base,
        )


def _haystack_of(entry: _Entry | None, item: WorkItem) -> str:
    """What a search looks in; from the row itself for a lead not derived yet."""
    return entry.haystack if entry is not None else f"{item.name} {item.vehicle}".lower()


def _action_text(step: PlannedStep) -> str:
    names = {StepChannel.CALL: "Call", StepChannel.TEXT: "Text", StepChannel.EMAIL: "Email"}
    name = names.get(step.channel, "Task")
    return f"{name} #{step.attempt}" if step.attempt else name


def _next_agent_step(cadence_plan: CadencePlan) -> PlannedStep | None:
    """The next step a person performs (automatic steps are the server's job)."""
    for step in cadence_plan.next_steps:
        if not step.automatic:
            return step
    return None


def _unanswered_reply(history: list[Activity]) -> Activity | None:
    """The customer's last inbound text or call, when nothing outbound followed it."""
    last_in: Activity | None = None
    for activity in sorted(history, key=lambda a: a.at):
        if activity.kind in (ActivityKind.TEXT, ActivityKind.CALL):
            if activity.direction is Direction.INBOUND:
                last_in = activity
            elif activity.direction is Direction.OUTBOUND and not activity.automatic:
                last_in = None
    return last_in
