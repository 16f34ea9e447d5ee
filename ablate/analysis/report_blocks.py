"""The page model of ``ablate report``: a page is a list of :data:`Block` s, rendered to HTML or
Markdown by :func:`render_blocks`, so both formats show the same content.

HTML tables sit in a horizontally scrolling box (a wide per-trial table never widens the page),
numbers are right-aligned in tabular figures, and every section heading has an anchor that the
table of contents (a ``toc`` block) links to; Markdown tables are written by the one writer,
:func:`ablate.analysis.render.markdown_table`, and its anchors are the ones GitHub gives headings.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ablate.analysis.render import markdown_table

CSS = """body{font-family:system-ui,sans-serif;max-width:1240px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0}.scroll{overflow-x:auto;margin:1em 0;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
td.num,table.ablate-table td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.grid{font-size:90%}table.grid th{font-weight:600;background:#f6f8fa}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}td.missing{color:#999}
td.diverged,td.failed{background:#fde8e8}td.collapsed{background:#fff4d6}.legend{font-size:90%;color:#555}
nav.toc{background:#f6f8fa;padding:.5em 1em;display:inline-block}nav.toc ol{margin:.3em 0;padding-left:1.4em}
img{max-width:100%;border:1px solid #eee;margin:6px 0}pre{background:#f6f8fa;padding:1em;overflow-x:auto}"""


@dataclass(frozen=True)
class Grid:
    """A small table of text: a header, rows of cells, and the columns that hold numbers (right-aligned)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    right: tuple[int, ...] = ()


# (kind, content): h1/h2/p/note: text; pre: (language, text); raw: (html, markdown); toc: [heading];
# grid: Grid; kv: [(key, value)]; details: (summary, open, Block); figure: (name, src, caption)
Block = tuple[str, Any]


def anchor(heading: str) -> str:
    """The anchor of a section heading, as GitHub makes it: lower case, spaces to ``-``, other
    punctuation dropped (``Sweep as run`` -> ``sweep-as-run``)."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _scroll(table: str) -> str:
    return f'<div class="scroll">{table}</div>'


def _html_grid(g: Grid) -> str:
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in g.header) + "</tr>"
    cell = lambda i, c: f'<td class="num">{e(c)}</td>' if i in g.right else f"<td>{e(c)}</td>"  # noqa: E731
    body = ["<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>" for row in g.rows]
    return _scroll("\n".join(['<table class="grid">', head, *body, "</table>"]))


def _html_figure(x: tuple[str, str, str]) -> str:
    name, b64, caption = (html.escape(s) for s in x)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{b64}"><figcaption>{caption}</figcaption></figure>'


def _html_kv(pairs: Sequence[tuple[str, str]]) -> str:
    e = html.escape
    return _scroll("\n".join(["<table>", *(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in pairs), "</table>"]))


def _html_toc(headings: Sequence[str]) -> str:
    items = "".join(f'<li><a href="#{anchor(h)}">{html.escape(h)}</a></li>' for h in headings)
    return f'<nav class="toc"><strong>Contents</strong><ol>{items}</ol></nav>'


HTML_BLOCKS: dict[str, Callable[[Any], str]] = {
    "h1": lambda x: f"<h1>{html.escape(x)}</h1>",
    "h2": lambda x: f'<h2 id="{anchor(x)}">{html.escape(x)}</h2>',
    "p": lambda x: f"<p>{html.escape(x)}</p>",
    "note": lambda x: f"<p class='legend'>{html.escape(x)}</p>",
    "pre": lambda x: f"<pre>{html.escape(x[1])}</pre>",
    "raw": lambda x: _scroll(x[0]),
    "toc": _html_toc,
    "grid": _html_grid,
    "kv": _html_kv,
    "details": lambda x: (
        f"<details{' open' if x[1] else ''}><summary>{html.escape(x[0])}</summary>\n"
        + render_blocks([x[2]], "html")
        + "\n</details>"
    ),
    "figure": _html_figure,
}
MARKDOWN_BLOCKS: dict[str, Callable[[Any], str]] = {
    "h1": lambda x: f"# {x}",
    "h2": lambda x: f"## {x}",
    "p": str,
    "note": lambda x: f"> {x}",
    "pre": lambda x: f"```{x[0]}\n{x[1].rstrip()}\n```",
    "raw": lambda x: x[1],
    "toc": lambda x: "\n".join(f"{i}. [{h}](#{anchor(h)})" for i, h in enumerate(x, 1)),
    "grid": lambda g: markdown_table(g.header, g.rows, g.right),
    "kv": lambda x: markdown_table(("", ""), x),
    "details": lambda x: f"{x[0]}:\n\n" + render_blocks([x[2]], "markdown"),
    "figure": lambda x: f"![{x[0]}]({x[1]})\n\n{x[2]}",
}
RENDERERS = {"html": (HTML_BLOCKS, "\n"), "markdown": (MARKDOWN_BLOCKS, "\n\n")}


def render_blocks(blocks: Sequence[Block], fmt: str) -> str:
    """``blocks`` as HTML (one element a line) or Markdown (a blank line between blocks)."""
    renderers, sep = RENDERERS[fmt]
    return sep.join(renderers[kind](content) for kind, content in blocks)


def with_contents(blocks: Sequence[Block]) -> list[Block]:
    """``blocks`` with a table of contents of their section headings (``h2``) before the first one."""
    headings = [x for kind, x in blocks if kind == "h2"]
    first = next((i for i, (kind, _) in enumerate(blocks) if kind == "h2"), len(blocks))
    return [*blocks[:first], ("toc", headings), *blocks[first:]] if headings else list(blocks)
