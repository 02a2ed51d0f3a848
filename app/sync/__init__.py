"""Talking to the lead API: credentials (keyring), the API client, the sync engine and
connectivity state. May import app.domain and app.store, never the UI."""
