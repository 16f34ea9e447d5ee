"""The YAML reader refuses what is not a small YAML text in one line naming the file and line, before
anything else reads it: other encodings, binary bytes, control characters, deep nesting, oversized
files, alias bombs and recursive aliases; ``--set`` values go through the same reader."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from ablate.config.tree import parse_set
from ablate.config.yamlfile import MAX_BYTES, MAX_DEPTH, MAX_NODES, read_yaml
from ablate.errors import UserError


def error_of(path: Path) -> str:
    with pytest.raises(UserError) as e:
        read_yaml(path)
    message = str(e.value)
    assert "\n" not in message  # one line, always
    return message


def test_text_that_is_not_utf8_yaml_is_refused_with_its_line(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: t\nbase: {}\n\xff\xfe\x00\x81 garbage\n")
    assert error_of(binary).startswith(f"{binary}:3: not UTF-8 text (byte 0xff at column 1); ")

    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes(codecs.BOM_UTF16_LE + "name: t\n".encode("utf-16-le"))
    assert error_of(utf16) == f"{utf16}: is UTF-16 text; save it as UTF-8 (YAML files here are UTF-8)"

    bell = tmp_path / "bell.yaml"
    bell.write_text('name: t\nbase: {}\ndescription: "a\x07b"\n')
    assert error_of(bell).startswith(f"{bell}:3: control character U+0007 at column 16 is not allowed in YAML; ")

    deep = tmp_path / "deep.yaml"
    deep.write_text("name: t\ndescription: " + "[" * 5000 + "]" * 5000 + "\n")  # PyYAML would recurse 5000 deep
    assert error_of(deep) == f"{deep}:2: nested deeper than {MAX_DEPTH} levels; a config is a shallow tree: flatten it"

    digits = tmp_path / "digits.yaml"
    digits.write_text("name: t\nseeds: [1" + "0" * 5000 + "]\n")  # more digits than Python turns into an int
    assert error_of(digits) == f"{digits}:2: an integer of 5001 digits; no setting needs one"


def test_a_file_over_the_size_cap_is_refused_before_it_is_parsed(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: t\n#" + "x" * MAX_BYTES + "\n")
    message = error_of(big)
    assert message.startswith(f"{big}: {MAX_BYTES + 10:,} bytes, more than the {MAX_BYTES:,} (1 MiB) ")


def test_an_alias_bomb_is_refused_and_aliases_for_reuse_still_work(tmp_path):
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcde", "bcdef"):  # each level 9 aliases of the one above: 10 x 9^5 > MAX_NODES
        levels.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(levels) + "\n")
    assert 10 * 9**5 > MAX_NODES
    assert error_of(bomb) == (
        f"{bomb}:6: expands to more than {MAX_NODES:,} values (aliases *x repeat what &x names); "
        "write each value once; use aliases to reuse a setting, not to multiply it"
    )

    loop = tmp_path / "loop.yaml"
    loop.write_text("name: t\ndescription: &a [1, *a]\n")
    assert error_of(loop) == f"{loop}:2: contains an alias of itself; a config is a tree: remove the alias"

    reuse = tmp_path / "reuse.yaml"
    reuse.write_text(
        "name: t\ngrid:\n  predictor:\n    - &dp {name: directpred, rho: 0.3}\n    - {<<: *dp, rho: 0.5}\n"
        "  optim: [&o {lr: 0.05}, *o]\n"
    )
    data, lines, _ = read_yaml(reuse)
    assert data["grid"]["predictor"][1] == {"name": "directpred", "rho": 0.5}
    assert data["grid"]["optim"] == [{"lr": 0.05}, {"lr": 0.05}] and lines["grid.predictor[1]"] == 5


def test_set_values_are_read_like_the_file_within_its_limits():
    assert parse_set(["optim.lr=1e-3", "seeds=[0, 1]", "caption=[a: b"]) == {
        "optim.lr": 0.001,  # as in a file (YAML 1.1 alone would keep the text "1e-3")
        "seeds": [0, 1],
        "caption": "[a: b",  # not YAML: the text itself
    }
    with pytest.raises(UserError, match=rf"^--set: x: nested deeper than {MAX_DEPTH} levels; "):
        parse_set(["x=" + "[" * 5000 + "]" * 5000])
