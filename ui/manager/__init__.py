"""The manager view: live floor board, queue health and reassignment, KPIs, call review."""
