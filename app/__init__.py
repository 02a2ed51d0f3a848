"""BDC Workstation core: domain rules, local store, sync, telephony and services (no Qt widgets)."""

__version__ = "0.1.0"
