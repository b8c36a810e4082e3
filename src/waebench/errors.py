"""The two kinds of errors a command can end with.

A `UserError` is something given to waebench that is wrong (a config value, a dataset file, a
folder, a checkpoint), and its message names the cause, the file or key, and the fix:
`waebench-train` and `waebench-eval` print the message alone and exit with status 1. Any other
exception is a bug of waebench's and keeps its full traceback.

A `Refused` error comes before a run starts: the launch wrote nothing (no run folder, no
`.hydra/`, no log), and a sweep lists the job as never started (`waebench.run.record`).

The errors derive from these beside their built-in type (`ConfigValueError(Refused,
ValueError)`), so code that catches `ValueError` still catches them.
"""

from __future__ import annotations


class UserError(Exception):
    """Something given to waebench is wrong; the message says what, where, and the fix."""


class Refused(UserError):
    """A launch refused before its run started; nothing was written."""
