"""Typed errors raised by the domain. Each carries a message a person can act on."""

from __future__ import annotations


class DomainError(ValueError):
    """Outside data broke a rule. `str(err)` is a human message naming what is wrong."""


class InvalidLeadError(DomainError):
    """A lead (or part of one) cannot be accepted as given."""


class InvalidActivityError(DomainError):
    """An activity record is inconsistent (e.g. a call with a negative duration)."""


class TemplateError(DomainError):
    """A template or script cannot be rendered (e.g. an unknown merge field)."""


class ResourceError(DomainError):
    """A rules file in resources/ is broken. Names the file, the line (when known) and the field."""

    def __init__(
        self, source: str, message: str, *, line: int | None = None, field: str = ""
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.detail = message
        where = source if line is None else f"{source}:{line}"
        what = f" [{field}]" if field else ""
        super().__init__(f"{where}{what}: {message}")
