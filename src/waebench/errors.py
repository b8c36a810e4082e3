"""The errors a command ends with its message alone.

A `UserError` is something given to waebench that is wrong (a config value, a dataset file, a
folder, a checkpoint, a full disk), and its message names the cause, the file or key, and the
fix: `waebench-train`, `waebench-eval`, the sweep launchers and the search print the message
alone and exit with status 1. Any other exception is a bug of waebench's and keeps its full
traceback. The errors derive from `UserError` beside their built-in type
(`ConfigValueError(UserError, ValueError)`), so code that catches `ValueError` still catches
them.
"""

from __future__ import annotations


class UserError(Exception):
    """Something given to waebench is wrong; the message says what, where, and the fix."""
