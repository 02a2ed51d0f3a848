"""The store a lead belongs to: its name, time zone and market, used by clocks and scoring."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.domain.errors import DomainError


@dataclass(frozen=True, slots=True)
class Dealership:
    id: str
    name: str
    time_zone: str  # IANA name, e.g. "America/Chicago"
    state: str  # two-letter code
    postal_code: str
    phone: str = ""
    website: str = ""
    address: str = ""
    # ZIP codes or 3-digit ZIP prefixes counted as the local market (scoring's "local ZIP").
    market_zips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DomainError(
                f"dealership {self.id}: unknown time zone {self.time_zone!r}"
            ) from exc

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def is_local_zip(self, postal_code: str) -> bool:
        zip5 = postal_code.strip()[:5]
        if len(zip5) != 5 or not zip5.isdigit():
            return False
        return any(zip5.startswith(prefix) for prefix in self.market_zips)
