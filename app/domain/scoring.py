"""Lead scoring: a 0-100 score with its reasons, a priority tier and an A-D grade.

The weights live in resources/scoring.toml. A lead scores over four dimensions (demographic fit,
behaviour, source quality, stated intent); each dimension is capped, then the total is clamped to
0-100. Re-scoring is the same function over a longer history: scores are never stored
incrementally, so the desktop and the server always agree.

How the reasons add up:
  * every rule that gives points adds one `ScoreReason` ("+20 local ZIP 60614"), in the order the
    dimensions are applied (demographic, behaviour, source, intent);
  * when a dimension goes over its cap, a negative reason follows it ("-5 intent capped at 40"),
    so the reasons always sum exactly to `LeadScore.unclamped`;
  * the final clamp to 0-100 is not a reason: `score` is `unclamped` clamped, and `clamped` says
    whether the clamp changed it (the UI shows "capped at 100").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from app.domain.activities import Activity, ActivityKind, Direction
from app.domain.dealership import Dealership
from app.domain.errors import InvalidActivityError, InvalidLeadError
from app.domain.leads import Lead, SourceType, VehicleInterest
from app.domain.rules_file import RulesDocument

MIN_SCORE = 0
MAX_SCORE = 100
_WEIGHT_LIMIT = 100


class Tier(StrEnum):
    """Priority tier: how hard the floor works the lead."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    HOT = "hot"

    @property
    def rank(self) -> int:
        """0 for low up to 3 for hot: compare tiers by rank, never by their text."""
        return _TIER_ORDER.index(self)


_TIER_ORDER = (Tier.LOW, Tier.MEDIUM, Tier.HIGH, Tier.HOT)


class Grade(StrEnum):
    A = "A"  # complete contact info, specific vehicle, timeframe within 30 days
    B = "B"  # complete contact info, vague interest or a longer timeframe
    C = "C"  # incomplete contact info or questionable intent
    D = "D"  # duplicate, spam or unreachable


class Dimension(StrEnum):
    DEMOGRAPHIC = "demographic"
    BEHAVIOUR = "behaviour"
    SOURCE = "source"
    INTENT = "intent"


class ContactPart(StrEnum):
    """What "complete contact information" can require (scoring.toml [grades] complete_contact)."""

    NAME = "name"
    PHONE = "phone"
    EMAIL = "email"
    ADDRESS = "address"


# ---------------------------------------------------------------------------------------------
# Rules (the parsed scoring.toml)


@dataclass(frozen=True, slots=True)
class TierBounds:
    """The lowest score of each tier; below `medium` is low."""

    hot: int = 76
    high: int = 51
    medium: int = 26

    def tier_for(self, score: int) -> Tier:
        if score >= self.hot:
            return Tier.HOT
        if score >= self.high:
            return Tier.HIGH
        if score >= self.medium:
            return Tier.MEDIUM
        return Tier.LOW


@dataclass(frozen=True, slots=True)
class GradeRules:
    complete_contact: tuple[ContactPart, ...]
    a_within_days: int


@dataclass(frozen=True, slots=True)
class DemographicWeights:
    cap: int
    local_zip: int
    out_of_area: int
    complete_address: int
    financial_details: int
    financial_words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BehaviourWeights:
    cap: int
    web_visit_after_first: int
    email_open: int
    inbound_reply: int


@dataclass(frozen=True, slots=True)
class SourceWeights:
    cap: int
    types: Mapping[SourceType, int]
    names: Mapping[str, int]  # keys lower-cased

    def points_for(self, name: str, source_type: SourceType) -> tuple[int, bool]:
        """(points, matched by name)."""
        by_name = self.names.get(name.strip().lower())
        if by_name is not None:
            return by_name, True
        return self.types[source_type], False


@dataclass(frozen=True, slots=True)
class TimeframeBand:
    within_days: int
    points: int


@dataclass(frozen=True, slots=True)
class IntentWeights:
    cap: int
    specific_vehicle: int
    trade_in: int
    test_drive: int
    test_drive_words: tuple[str, ...]
    financing: int
    financing_words: tuple[str, ...]
    timeframe: tuple[TimeframeBand, ...]  # ascending within_days

    def band_for(self, within_days: int) -> TimeframeBand | None:
        for band in self.timeframe:
            if within_days <= band.within_days:
                return band
        return None


@dataclass(frozen=True, slots=True)
class ScoringRules:
    tiers: TierBounds
    grades: GradeRules
    demographic: DemographicWeights
    behaviour: BehaviourWeights
    source: SourceWeights
    intent: IntentWeights
    source_name: str = ""

    def tier_for(self, score: int) -> Tier:
        return self.tiers.tier_for(score)


# ---------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True, slots=True)
class ScoreReason:
    points: int
    text: str
    dimension: Dimension

    def __str__(self) -> str:
        return f"{self.points:+d} {self.text}"


@dataclass(frozen=True, slots=True)
class LeadScore:
    score: int  # 0-100
    tier: Tier
    grade: Grade
    grade_reason: str  # why this grade, one line for the UI
    reasons: tuple[ScoreReason, ...]  # sum exactly to `unclamped`
    unclamped: int  # the sum of the reasons, before the 0-100 clamp

    @property
    def clamped(self) -> bool:
        return self.score != self.unclamped

    def points_for(self, dimension: Dimension) -> int:
        return sum(r.points for r in self.reasons if r.dimension is dimension)


def score_changed(before: LeadScore | None, after: LeadScore) -> bool:
    """Worth a SCORE_CHANGE activity: the first score, or a new score, tier or grade."""
    if before is None:
        return True
    return (before.score, before.tier, before.grade) != (after.score, after.tier, after.grade)


def crossed_into_higher_tier(before: LeadScore | None, after: LeadScore) -> bool:
    """The guide's alert: a lead moved up into a higher-priority tier (a first score never does)."""
    return before is not None and after.tier.rank > before.tier.rank


def score_change_activity(
    before: LeadScore | None, after: LeadScore, *, lead_id: str, at: datetime, activity_id: str
) -> Activity:
    """The SCORE_CHANGE record the server appends when `score_changed` says so."""
    if not lead_id:
        raise InvalidActivityError("a score change needs the lead's id")
    if not activity_id:
        raise InvalidActivityError("a score change needs an activity id")
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidActivityError(
            "score change time must carry a time zone (got a naive datetime)"
        )
    now = f"{after.score} ({after.tier.value}, grade {after.grade.value})"
    if before is None:
        body = f"Scored {now}"
    else:
        was = f"{before.score} ({before.tier.value}, grade {before.grade.value})"
        body = f"Score {was} -> {now}"
    return Activity(
        id=activity_id,
        lead_id=lead_id,
        kind=ActivityKind.SCORE_CHANGE,
        at=at,
        automatic=True,
        score=after.score,
        body=body,
    )


# ---------------------------------------------------------------------------------------------
# Scoring


def score_lead(
    rules: ScoringRules, lead: Lead, dealership: Dealership, history: Iterable[Activity] = ()
) -> LeadScore:
    """Score `lead` from its own data and its activity history (any order)."""
    activities = tuple(history)
    for activity in activities:
        if not isinstance(activity, Activity):
            raise InvalidActivityError(
                f"history must hold activities, got {type(activity).__name__}"
            )
        if activity.lead_id != lead.id:
            raise InvalidActivityError(
                f"activity {activity.id} belongs to lead {activity.lead_id!r}, not {lead.id!r}"
            )
    _check_timeframe(lead)

    reasons: list[ScoreReason] = []
    _capped(
        reasons, Dimension.DEMOGRAPHIC, rules.demographic.cap, _demographic(rules, lead, dealership)
    )
    _capped(reasons, Dimension.BEHAVIOUR, rules.behaviour.cap, _behaviour(rules, activities))
    _capped(reasons, Dimension.SOURCE, rules.source.cap, _source(rules, lead))
    _capped(reasons, Dimension.INTENT, rules.intent.cap, _intent(rules, lead))

    unclamped = sum(r.points for r in reasons)
    score = max(MIN_SCORE, min(MAX_SCORE, unclamped))
    grade, grade_reason = grade_lead(rules, lead)
    return LeadScore(
        score=score,
        tier=rules.tier_for(score),
        grade=grade,
        grade_reason=grade_reason,
        reasons=tuple(reasons),
        unclamped=unclamped,
    )


def _check_timeframe(lead: Lead) -> None:
    within_days = lead.timeframe.within_days
    if within_days is not None and (
        not isinstance(within_days, int) or isinstance(within_days, bool) or within_days < 0
    ):
        raise InvalidLeadError(
            f"lead {lead.id}: timeframe within_days must be 0 or more, got {within_days!r}"
        )


def _capped(
    out: list[ScoreReason], dimension: Dimension, cap: int, items: list[tuple[int, str]]
) -> None:
    kept = [ScoreReason(points, text, dimension) for points, text in items if points != 0]
    out.extend(kept)
    total = sum(r.points for r in kept)
    if total > cap:
        out.append(ScoreReason(cap - total, f"{dimension.value} capped at {cap}", dimension))


def _demographic(rules: ScoringRules, lead: Lead, dealership: Dealership) -> list[tuple[int, str]]:
    weights = rules.demographic
    items: list[tuple[int, str]] = []
    zip5 = lead.address.postal_code.strip()[:5]
    if len(zip5) == 5 and zip5.isdigit():
        if dealership.is_local_zip(zip5):
            items.append((weights.local_zip, f"local ZIP {zip5}"))
        else:
            items.append((weights.out_of_area, f"ZIP {zip5} is outside the market"))
    if _address_complete(lead):
        items.append((weights.complete_address, "complete street address"))
    word = _first_word(weights.financial_words, _lead_text(lead))
    if word is not None:
        items.append((weights.financial_details, f'financial details mentioned ("{word}")'))
    return items


def _behaviour(rules: ScoringRules, activities: Sequence[Activity]) -> list[tuple[int, str]]:
    weights = rules.behaviour
    visits = sum(1 for a in activities if a.kind is ActivityKind.WEB_VISIT)
    opens = sum(1 for a in activities if a.kind is ActivityKind.EMAIL_OPEN)
    replies = [
        a
        for a in activities
        if a.kind in (ActivityKind.TEXT, ActivityKind.EMAIL, ActivityKind.CALL)
        and a.direction is Direction.INBOUND
    ]
    items: list[tuple[int, str]] = []
    if visits > 1:
        items.append(
            (
                weights.web_visit_after_first * (visits - 1),
                f"{visits} website visits "
                f"({weights.web_visit_after_first:+d} each after the first)",
            )
        )
    if opens:
        items.append((weights.email_open * opens, _count(opens, "email open", "email opens")))
    if replies:
        kinds = sorted({a.kind.value for a in replies})
        text = _count(len(replies), "inbound reply", "inbound replies")
        items.append((weights.inbound_reply * len(replies), f"{text} ({', '.join(kinds)})"))
    return items


def _source(rules: ScoringRules, lead: Lead) -> list[tuple[int, str]]:
    points, by_name = rules.source.points_for(lead.source.name, lead.source.type)
    label = _SOURCE_LABELS[lead.source.type]
    name = lead.source.name.strip()
    if by_name:
        text = f"source {name} ({label})"
    else:
        text = f"source: {label}" + (f" ({name})" if name else "")
    return [(points, text)]


_SOURCE_LABELS = {
    SourceType.FIRST_PARTY: "first-party website",
    SourceType.THIRD_PARTY: "third-party",
    SourceType.PHONE: "phone-up",
    SourceType.CHAT: "chat",
    SourceType.WALK_IN: "walk-in",
    SourceType.SERVICE_TO_SALES: "service-to-sales",
    SourceType.EQUITY_MINING: "equity mining",
}


def _intent(rules: ScoringRules, lead: Lead) -> list[tuple[int, str]]:
    weights = rules.intent
    items: list[tuple[int, str]] = []
    within_days = lead.timeframe.within_days
    if within_days is not None:
        band = weights.band_for(within_days)
        if band is not None:
            said = lead.timeframe.description.strip()
            quote = f' ("{said}")' if said else ""
            items.append((band.points, f"timeframe within {band.within_days} days{quote}"))
    specific = next((v for v in lead.vehicles if v.is_specific), None)
    if specific is not None:
        what = specific.description or specific.vin or specific.stock_number
        items.append((weights.specific_vehicle, f"specific vehicle: {what}"))
    trade = lead.trade_in or next(
        (
            v
            for v in lead.vehicles
            if v.interest in (VehicleInterest.TRADE_IN, VehicleInterest.SELL)
        ),
        None,
    )
    if trade is not None:
        what = trade.description
        items.append((weights.trade_in, f"trade-in: {what}" if what else "has a trade-in"))
    text = _lead_text(lead)
    if any(v.interest is VehicleInterest.TEST_DRIVE for v in lead.vehicles):
        items.append((weights.test_drive, "test drive requested"))
    else:
        word = _first_word(weights.test_drive_words, text)
        if word is not None:
            items.append((weights.test_drive, f'test drive interest ("{word}")'))
    if any(v.interest is VehicleInterest.LEASE for v in lead.vehicles):
        items.append((weights.financing, "wants to lease"))
    else:
        word = _first_word(weights.financing_words, text)
        if word is not None:
            items.append((weights.financing, f'financing mentioned ("{word}")'))
    return items


def _lead_text(lead: Lead) -> str:
    return f"{lead.comments}\n{lead.timeframe.description}".lower()


def _first_word(words: Sequence[str], text: str) -> str | None:
    """The first listed word found in `text` as a whole word (so "apr" does not match "April")."""
    for word in words:
        # The substring test first: most words are not in most texts, and it costs far less.
        if word in text and _whole_word(word).search(text):
            return word
    return None


@functools.lru_cache(maxsize=1024)
def _whole_word(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])")


def _count(n: int, one: str, many: str) -> str:
    return f"1 {one}" if n == 1 else f"{n} {many}"


def _address_complete(lead: Lead) -> bool:
    a = lead.address
    return all(part.strip() for part in (a.street, a.city, a.state, a.postal_code))


# ---------------------------------------------------------------------------------------------
# Grading


def grade_lead(rules: ScoringRules, lead: Lead) -> tuple[Grade, str]:
    """The guide's A-D grade and a one-line reason for it."""
    _check_timeframe(lead)
    if lead.duplicate_of:
        return Grade.D, f"duplicate of lead {lead.duplicate_of}"
    if lead.is_spam:
        return Grade.D, "marked as spam"
    if not lead.reachable:
        return Grade.D, "unreachable: no reachable phone and no valid email"
    missing = [part.value for part in rules.grades.complete_contact if not _has(lead, part)]
    if missing:
        return Grade.C, f"incomplete contact information (missing {', '.join(missing)})"
    within_days = lead.timeframe.within_days
    if not lead.vehicles and lead.trade_in is None and within_days is None:
        return Grade.C, "questionable intent: no vehicle, trade-in or timeframe stated"
    specific = any(v.is_specific for v in lead.vehicles)
    soon = within_days is not None and within_days <= rules.grades.a_within_days
    if specific and soon:
        return Grade.A, (
            f"complete contact information, specific vehicle, "
            f"timeframe within {rules.grades.a_within_days} days"
        )
    vague = "vague vehicle interest" if not specific else ""
    later = (
        ""
        if soon
        else ("no stated timeframe" if within_days is None else f"timeframe {within_days} days")
    )
    why = " and ".join(part for part in (vague, later) if part)
    return Grade.B, f"complete contact information, but {why}"


def _has(lead: Lead, part: ContactPart) -> bool:
    if part is ContactPart.NAME:
        person = lead.person
        return bool(
            (person.first_name.strip() and person.last_name.strip()) or person.business_name.strip()
        )
    if part is ContactPart.PHONE:
        return lead.primary_phone is not None
    if part is ContactPart.EMAIL:
        return lead.primary_email is not None
    return _address_complete(lead)


# ---------------------------------------------------------------------------------------------
# Parsing scoring.toml


_TOP_KEYS = {"tiers", "grades", "demographic", "behaviour", "source", "intent"}


def parse_scoring_rules(text: str, source: str) -> ScoringRules:
    """Validated scoring rules; a broken file raises ResourceError naming the line and field."""
    doc = RulesDocument(text, source)
    data = doc.data
    doc.check_keys(data, (), _TOP_KEYS)
    for key in sorted(_TOP_KEYS):
        if key not in data:
            raise doc.error((), f"missing required table [{key}]")
    return ScoringRules(
        tiers=_parse_tiers(doc),
        grades=_parse_grades(doc),
        demographic=_parse_demographic(doc),
        behaviour=_parse_behaviour(doc),
        source=_parse_source(doc),
        intent=_parse_intent(doc),
        source_name=source,
    )


def _weight(
    doc: RulesDocument,
    table: Mapping[str, Any],
    path: tuple[str | int, ...],
    *,
    low: int = -_WEIGHT_LIMIT,
    high: int = _WEIGHT_LIMIT,
) -> int:
    value = doc.get(table, path, int)
    if not low <= value <= high:
        raise doc.error(path, f"must be between {low} and {high}, got {value}")
    return value


def _words(doc: RulesDocument, table: Mapping[str, Any], path: tuple[str, ...]) -> tuple[str, ...]:
    values = doc.array(path, doc.get(table, path, list))
    words: list[str] = []
    for index, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise doc.error((*path, index), f"must be a non-empty string, got {value!r}")
        words.append(value.strip().lower())
    return tuple(words)


def _parse_tiers(doc: RulesDocument) -> TierBounds:
    table = doc.table(("tiers",), doc.data["tiers"])
    doc.check_keys(table, ("tiers",), {"hot", "high", "medium"})
    hot = _weight(doc, table, ("tiers", "hot"), low=1, high=MAX_SCORE)
    high = _weight(doc, table, ("tiers", "high"), low=1, high=MAX_SCORE)
    medium = _weight(doc, table, ("tiers", "medium"), low=1, high=MAX_SCORE)
    if not medium < high:
        raise doc.error(("tiers", "high"), f"must be above medium ({medium}), got {high}")
    if not high < hot:
        raise doc.error(("tiers", "hot"), f"must be above high ({high}), got {hot}")
    return TierBounds(hot=hot, high=high, medium=medium)


def _parse_grades(doc: RulesDocument) -> GradeRules:
    path: tuple[str, ...] = ("grades",)
    table = doc.table(path, doc.data["grades"])
    doc.check_keys(table, path, {"complete_contact", "a_within_days"})
    parts: list[ContactPart] = []
    for index, value in enumerate(_words(doc, table, (*path, "complete_contact"))):
        try:
            parts.append(ContactPart(value))
        except ValueError:
            allowed = ", ".join(p.value for p in ContactPart)
            raise doc.error(
                (*path, "complete_contact", index), f"unknown part {value!r} (allowed: {allowed})"
            ) from None
    if not parts:
        raise doc.error((*path, "complete_contact"), "must name at least one part")
    days = _weight(doc, table, (*path, "a_within_days"), low=0, high=3650)
    return GradeRules(complete_contact=tuple(dict.fromkeys(parts)), a_within_days=days)


def _parse_demographic(doc: RulesDocument) -> DemographicWeights:
    path: tuple[str, ...] = ("demographic",)
    table = doc.table(path, doc.data["demographic"])
    keys = {"cap", "local_zip", "out_of_area", "complete_address", "financial_details"}
    doc.check_keys(table, path, keys | {"financial_words"})
    return DemographicWeights(
        cap=_weight(doc, table, (*path, "cap"), low=0, high=MAX_SCORE),
        local_zip=_weight(doc, table, (*path, "local_zip")),
        out_of_area=_weight(doc, table, (*path, "out_of_area")),
        complete_address=_weight(doc, table, (*path, "complete_address")),
        financial_details=_weight(doc, table, (*path, "financial_details")),
        financial_words=_words(doc, table, (*path, "financial_words")),
    )


def _parse_behaviour(doc: RulesDocument) -> BehaviourWeights:
    path: tuple[str, ...] = ("behaviour",)
    table = doc.table(path, doc.data["behaviour"])
    doc.check_keys(table, path, {"cap", "web_visit_after_first", "email_open", "inbound_reply"})

    # Engagement is never a bad sign: negative weights would make more activity lower the score.
    def engagement(key: str) -> int:
        return _weight(doc, table, (*path, key), low=0)

    return BehaviourWeights(
        cap=_weight(doc, table, (*path, "cap"), low=0, high=MAX_SCORE),
        web_visit_after_first=engagement("web_visit_after_first"),
        email_open=engagement("email_open"),
        inbound_reply=engagement("inbound_reply"),
    )


def _parse_source(doc: RulesDocument) -> SourceWeights:
    path: tuple[str, ...] = ("source",)
    table = doc.table(path, doc.data["source"])
    doc.check_keys(table, path, {"cap", "types", "names"})
    cap = _weight(doc, table, (*path, "cap"), low=0, high=MAX_SCORE)
    types_path = (*path, "types")
    types_table = doc.table(types_path, doc.get(table, types_path, dict))
    doc.check_keys(types_table, types_path, {t.value for t in SourceType})
    types: dict[SourceType, int] = {}
    for source_type in SourceType:
        types[source_type] = _weight(doc, types_table, (*types_path, source_type.value))
    names: dict[str, int] = {}
    names_path = (*path, "names")
    if "names" in table:
        names_table = doc.table(names_path, table["names"])
        for name in names_table:
            key = name.strip().lower()
            if not key:
                raise doc.error(names_path, "a source name cannot be empty")
            if key in names:
                raise doc.error((*names_path, name), f"source name {name!r} is listed twice")
            names[key] = _weight(doc, names_table, (*names_path, name))
    return SourceWeights(cap=cap, types=MappingProxyType(types), names=MappingProxyType(names))


def _parse_intent(doc: RulesDocument) -> IntentWeights:
    path: tuple[str, ...] = ("intent",)
    table = doc.table(path, doc.data["intent"])
    keys = {"cap", "specific_vehicle", "trade_in", "test_drive", "financing", "timeframe"}
    doc.check_keys(table, path, keys | {"test_drive_words", "financing_words"})
    bands: list[TimeframeBand] = []
    bands_path = (*path, "timeframe")
    for index, raw in enumerate(doc.array(bands_path, doc.get(table, bands_path, list))):
        band_path: tuple[str | int, ...] = (*bands_path, index)
        band = doc.table(band_path, raw)
        doc.check_keys(band, band_path, {"within_days", "points"})
        days = _weight(doc, band, (*band_path, "within_days"), low=0, high=3650)
        if bands and days <= bands[-1].within_days:
            raise doc.error(
                (*band_path, "within_days"),
                f"bands must go from the shortest timeframe up: {days} does not follow "
                f"{bands[-1].within_days}",
            )
        bands.append(
            TimeframeBand(within_days=days, points=_weight(doc, band, (*band_path, "points")))
        )
    return IntentWeights(
        cap=_weight(doc, table, (*path, "cap"), low=0, high=MAX_SCORE),
        specific_vehicle=_weight(doc, table, (*path, "specific_vehicle")),
        trade_in=_weight(doc, table, (*path, "trade_in")),
        test_drive=_weight(doc, table, (*path, "test_drive")),
        test_drive_words=_words(doc, table, (*path, "test_drive_words")),
        financing=_weight(doc, table, (*path, "financing")),
        financing_words=_words(doc, table, (*path, "financing_words")),
        timeframe=tuple(bands),
    )
