"""Helpers shared by floe's tests."""
