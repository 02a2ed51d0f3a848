"""Tests for the lead API server."""
