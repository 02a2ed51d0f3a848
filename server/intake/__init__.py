"""Lead intake for the lead API: turning what providers send into domain Leads."""

from server.intake.adf import (
    DEFAULT_SOURCE_TYPES,
    AdfAmount,
    AdfError,
    AdfFinance,
    AdfId,
    AdfParseResult,
    AdfProblem,
    ParsedProspect,
    ProspectStatus,
    guess_source_type,
    parse_adf,
    split_full_name,
)

__all__ = [
    "DEFAULT_SOURCE_TYPES",
    "AdfAmount",
    "AdfError",
    "AdfFinance",
    "AdfId",
    "AdfParseResult",
    "AdfProblem",
    "ParsedProspect",
    "ProspectStatus",
    "guess_source_type",
    "parse_adf",
    "split_full_name",
]
