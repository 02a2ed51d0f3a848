"""The agent's work queue: from leads and their histories to ranked work items and lead details.

Plain objects own the data; the Qt model only shows what `items()` returns. Everything a row or
the workspace needs is computed here with the domain rules, once per change to a lead (not per
tick): the countdown itself is derived from `due_at` at paint time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from sys import intern

from app.domain.activities import Activity, ActivityKind, Direction, in_order
from app.domain.cadence import CadencePlan, PlannedStep, SpanCache, StepChannel, describe_next, plan
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


Reader = Callable[[str], tuple[Lead, list[Activity]] | None]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A lead derived but not yet put in the queue (see `WorkQueue.prepare`)."""

    lead: Lead
    history: list[Activity]
    item: WorkItem | None
    haystack: str


# With a reader, the leads (and histories) last derived or read are kept for the workspace.
KEEP_RECENT = 32


class WorkQueue:
    """The leads one agent works, re-derived per lead on change.

    In memory per lead: its ranked work item and its search text. The lead and its history are
    kept too unless `read_from` gave a reader (the store): then they are read when the
    workspace asks (`detail`, `history`), and only the last few are kept.
    """

    def __init__(self, rules: Rulebook, dealership: Dealership) -> None:
        self._rules = rules
        self._dealership = dealership
        self._hours = replace(rules.hours, time_zone=dealership.time_zone)
        self._entries: dict[str, str] = {}  # lead id -> search text (lower-case)
        self._kept: dict[str, tuple[Lead, list[Activity]]] = {}  # oldest first
        self._reader: Reader | None = None
        # Told a lead's id when asking about it changed the queue (`on_changed_by_asking`).
        self._asked_changed: Callable[[str], None] | None = None
        self._legal_windows: dict[tuple[str, tuple[str, ...], tuple[str, ...]], SpanCache] = {}
        # The open items in priority order, kept incrementally (one bisect per changed lead).
        self._ranking = Ranking()
        # Start-up from the cached snapshot: leads shown from it but not derived yet, how to
        # read one on demand, and leads changed since (the background load must not undo them).
        self._provisional: set[str] = set()
        self._fetch: Callable[[str], tuple[Lead, list[Activity]] | None] | None = None
        self._changed_while_loading: set[str] | None = None
        self._lead_count_hint = 0

    def read_from(self, reader: Reader) -> None:
        """Keep only the work items and search texts: `reader(lead_id)` gives a lead and its
        history (oldest first) when the workspace asks, None when it is no longer there."""
        self._reader = reader
        while len(self._kept) > KEEP_RECENT:
            del self._kept[next(iter(self._kept))]

    def on_changed_by_asking(self, listener: Callable[[str], None]) -> None:
        """`listener(lead_id)` when asking about a lead (`detail`, `history`, `item_for`)
        changed its row: the reader said it is gone (it left the queue), or a row shown from
        the snapshot was derived with another rank (a failed background load leaves the rows
        to be derived when asked about)."""
        self._asked_changed = listener

    def _changed_by_asking(self, lead_id: str) -> None:
        if self._asked_changed is not None:
            self._asked_changed(lead_id)

    def _keep(self, lead: Lead, history: list[Activity]) -> None:
        kept = self._kept
        kept.pop(lead.id, None)
        kept[lead.id] = (lead, history)
        if self._reader is not None and len(kept) > KEEP_RECENT:
            del kept[next(iter(kept))]

    def _lead(self, lead_id: str) -> tuple[Lead, list[Activity]] | None:
        """The lead and history as last derived, else as the reader gives them now."""
        kept = self._kept.get(lead_id)
        if kept is not None or self._reader is None:
            return kept
        read = self._reader(lead_id)
        if read is not None:
            self._keep(*read)
        elif self.remove(lead_id):  # no longer stored, or no longer this agent's
            self._changed_by_asking(lead_id)
        return read

    def load(self, leads: Iterable[tuple[Lead, list[Activity]]], now: datetime) -> None:
        items: list[WorkItem] = []
        for lead, history in leads:
            item = self._derive(lead, history, now)
            if item is not None:
                items.append(item)
        self._ranking.rebuild(items, now)

    def upsert(self, lead: Lead, history: list[Activity], now: datetime) -> None:
        self.put_prepared(self.prepare(lead, history, now), now)

    def remove(self, lead_id: str) -> bool:
        """Take a lead out of the queue (reassigned, claimed by someone else); True if it was in."""
        self._ranking.drop(lead_id)
        if self._changed_while_loading is not None:
            self._changed_while_loading.add(lead_id)
        was_shown = lead_id in self._provisional
        self._provisional.discard(lead_id)
        self._kept.pop(lead_id, None)
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
            item = self._derive(lead, history, now)
            self._provisional.discard(lead.id)
            self._ranking.put(lead.id, item, now)
            if item != before:
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

    def _known(self, lead_id: str) -> bool:
        """Whether the lead is derived; a lead shown from the snapshot is derived now."""
        if lead_id in self._entries:
            return True
        if lead_id not in self._provisional or self._fetch is None:
            return False
        fetched = self._fetch(lead_id)
        if fetched is None:
            if self.remove(lead_id):
                self._changed_by_asking(lead_id)
            return False
        lead, history = fetched
        now = self._ranking.now
        assert now is not None
        before = self._ranking.item_of(lead_id)
        item = self._derive(lead, history, now)
        self._provisional.discard(lead_id)
        if self._changed_while_loading is not None:
            self._changed_while_loading.add(lead_id)  # fresher than the background's read
        self._ranking.put(lead_id, item, now)
        if item != before:
            self._changed_by_asking(lead_id)
        return True

    def __contains__(self, lead_id: object) -> bool:
        return lead_id in self._entries or lead_id in self._provisional

    def item_for(self, lead_id: str) -> WorkItem | None:
        """The lead's open work item (None: nothing to do now, or not in the queue)."""
        return self._ranking.item_of(lead_id) if self._known(lead_id) else None

    def history(self, lead_id: str) -> list[Activity]:
        read = self._lead(lead_id) if self._known(lead_id) else None
        return [] if read is None else list(read[1])

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
        """KeyError: the lead is not in the queue (any more: then it leaves it now, and the
        `on_changed_by_asking` listener is told)."""
        read = self._lead(lead_id) if self._known(lead_id) else None
        if read is None:
            raise KeyError(lead_id)
        lead, history = read
        zone = self._zone(lead)
        clocks = response_clocks(lead, history, self._hours, self._rules.response_policy, now=now)
        contact = tuple(
            (
                channel,
                check_contact(
                    self._rules.calling_rules, lead, history, channel, now, resolution=zone
                ),
            )
            for channel in (Channel.CALL, Channel.TEXT, Channel.EMAIL)
        )
        phone = lead.primary_phone
        cadence_plan = self._plan(lead, history, now, zone)
        return LeadDetail(
            lead=lead,
            score=score_lead(self._rules.scoring, lead, self._dealership, history),
            clocks=clocks,
            zone=zone,
            customer_time=zone.local_time(now),
            contact=contact,
            plan=cadence_plan,
            next_text=describe_next(cadence_plan, zone.primary_zone),
            timeline=tuple(sorted(history, key=lambda a: a.at.astimezone(UTC), reverse=True)),
            phone_display=format_for_display(phone.e164) if phone and phone.e164 else "",
        )

    # Derivation, once per change

    def _derive(self, lead: Lead, history: list[Activity], now: datetime) -> WorkItem | None:
        """The lead's work item; its search text is kept (and the lead, see `_keep`). The
        score, zones and plan are not (most of a lead's derived memory): `detail` derives
        them again for the one lead it shows."""
        return self._adopt(self.prepare(lead, history, now))

    def prepare(self, lead: Lead, history: list[Activity], now: datetime) -> Prepared:
        """The lead derived, without changing the queue (`put_prepared` puts it in)."""
        score = score_lead(self._rules.scoring, lead, self._dealership, history)
        item = self._work_item(lead, history, score, self._zone(lead), now)
        phones = " ".join(f"{p.raw} {p.e164 or ''}" for p in lead.phones)
        vehicle = lead.vehicle.description if lead.vehicle else ""
        haystack = f"{lead.person.full_name} {phones} {vehicle}".lower()
        return Prepared(lead, history, item, haystack)

    def put_prepared(self, prepared: Prepared, now: datetime) -> None:
        """`upsert` of a lead derived by `prepare`."""
        item = self._adopt(prepared)
        lead_id = prepared.lead.id
        self._provisional.discard(lead_id)
        if self._changed_while_loading is not None:
            self._changed_while_loading.add(lead_id)
        self._ranking.put(lead_id, item, now)

    def _adopt(self, prepared: Prepared) -> WorkItem | None:
        self._entries[prepared.lead.id] = prepared.haystack
        self._keep(prepared.lead, prepared.history)
        return prepared.item

    def _zone(self, lead: Lead) -> ZoneResolution:
        return resolve_zones(lead, self._rules.zip_table, fallback_zone=self._dealership.time_zone)

    def _plan(
        self, lead: Lead, history: list[Activity], now: datetime, zone: ZoneResolution
    ) -> CadencePlan:
        spans = self._spans(zone)
        return plan(
            self._rules.cadences.values(),
            lead,
            history,
            now,
            zone=zone.primary_zone,
            legal_window=spans.legal_window,
            spans=spans,
        )

    def _spans(self, zone: ZoneResolution) -> SpanCache:
        """One cached legal-window function, and the allowed spans worked out with it, per
        distinct zone set (most leads share a few). Keyed by what `legal_window` reads of the
        resolution (primary zone, zones, states), not the whole resolution, whose notes and
        candidate details differ per ZIP and phone."""
        key = (zone.primary, zone.zones, zone.states)
        spans = self._legal_windows.get(key)
        if spans is None:
            window = functools.lru_cache(maxsize=4096)(
                legal_window_fn(self._rules.calling_rules, zone)
            )
            spans = SpanCache(zone.primary_zone, window)
            self._legal_windows[key] = spans
        return spans

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
            # one copy of each repeated text across 50,000 rows
            "vehicle": intern(lead.vehicle.description) if lead.vehicle else "",
            "source": intern(lead.source.name),
        }
        reply = _unanswered_reply(history)
        if reply is not None:
            action = "Reply to text" if reply.kind is ActivityKind.TEXT else "Call back"
            channel = Channel.TEXT if reply.kind is ActivityKind.TEXT else Channel.CALL
            return WorkItem(
                kind=WorkKind.CUSTOMER_REPLY,
                # Real minutes: zoned + timedelta is wall clock (an hour off at the fall-back).
                due_at=reply.at.astimezone(UTC) + REPLY_RESPONSE_TIME,
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
        cadence_plan = self._plan(lead, history, now, zone)
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
            action=intern(_action_text(step)),
            channel=_STEP_CHANNEL.get(step.channel),
            detail=intern(step.reason),
            **base,
        )


def _haystack_of(haystack: str | None, item: WorkItem) -> str:
    """What a search looks in; from the row itself for a lead not derived yet."""
    return haystack if haystack is not None else f"{item.name} {item.vehicle}".lower()


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
    for activity in in_order(history):
        if activity.kind in (ActivityKind.TEXT, ActivityKind.CALL):
            if activity.direction is Direction.INBOUND:
                last_in = activity
            elif activity.direction is Direction.OUTBOUND and not activity.automatic:
                last_in = None
    return last_in
