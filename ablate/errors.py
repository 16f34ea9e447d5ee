"""User-facing errors: one line, exit code 2, never a traceback."""

from __future__ import annotations

import unicodedata

# Characters that move the cursor, end a line or reorder text on a terminal: every C0/C1 control,
# DEL, the Unicode line and paragraph separators and the bidirectional controls (which can make a
# name read backwards); and lone surrogates, which stand for the undecodable bytes of a file name
# and cannot be written to a UTF-8 terminal at all. Printable text passes through (a tab is escaped too).
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(ch: str) -> str:
    if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
        code = ord(ch)
        return _SHORT.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return ch


def printable(text: object) -> str:
    """``text`` as one line that is safe on a terminal: control characters (ESC, CR, LF...) escaped
    as ``\\x1b``. For every message built from outside input (a server's answer, a file's name or
    contents), so that the input can neither break the line nor rewrite what the terminal shows."""
    text = str(text)
    if text.isprintable() and not (_BIDI & set(text)):
        return text
    return "".join(_escape(ch) for ch in text)


class UserError(Exception):
    """A mistake in the user's input (config, sweep file, path, flag).

    The CLI prints ``ablate: error: <message>`` on one line and exits with code 2.
    The message names the problem and, where there is one, the fix. It quotes outside input (a
    path, a value, a server's answer, a file's contents), so it is made :func:`printable` here:
    one safe line however it was built.
    """

    exit_code = 2

    def __init__(self, message: object = "") -> None:
        super().__init__(printable(message))


class DatasetError(UserError):
    """A dataset that is missing or malformed at the path the user gave, or a download that failed."""
