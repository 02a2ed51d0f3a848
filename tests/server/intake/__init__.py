"""Tests for lead intake."""
