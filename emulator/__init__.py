"""The one-process router for the Space: every handler on one port, plus the worker pool."""
