"""Pure rules of the trade, shared by the desktop program and the lead API server.

No I/O, no Qt, no database: functions take plain values and frozen dataclasses and return the same.
"""
