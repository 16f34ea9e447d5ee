"""User-facing errors: one line, exit code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (config, sweep file, path, flag).

    The CLI prints ``ablate: error: <message>`` on one line and exits with code 2.
    The message names the problem and, where there is one, the fix.
    """

    exit_code = 2


class DatasetError(UserError):
    """A dataset that is missing or malformed at the path the user gave."""
