"""One-line errors: outside input in a message cannot break the line or act on the terminal."""

import os

import pytest

from ablate.cli import main
from ablate.errors import DatasetError, UserError, printable


@pytest.mark.parametrize(
    "text, shown",
    [
        ("plain text, é and 日本", "plain text, é and 日本"),
        ("a\x1b[2Kb", "a\\x1b[2Kb"),
        ("one\r\ntwo\tthree", "one\\r\\ntwo\\tthree"),
        ("\x07\x08\x7f\x85\x9b", "\\x07\\x08\\x7f\\x85\\x9b"),  # BEL, BS, DEL, NEL, CSI
        ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
        ("abc\u202edcba", "abc\\u202edcba"),  # a bidi override, which would show 'abcabcd'
        (os.fsdecode(b"name\xff.png"), "name\\udcff.png"),  # an undecodable file name byte
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text, shown):
    assert printable(text) == shown and printable(shown) == shown
    assert str(DatasetError(f"bad {text}")) == f"bad {shown}"
    printable(text).encode("utf-8")  # writable to any UTF-8 terminal


def test_every_user_error_is_one_printable_line(capsys):
    assert main(["check", "no\x1b[2J\rsuch.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\r" not in err
    assert str(UserError("a\nb")) == "a\\nb"
