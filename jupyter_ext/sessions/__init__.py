"""Interpreter sessions: the Jupyter protocol across the box boundary (docs/sessions.md)."""
