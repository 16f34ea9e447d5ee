"""Text forms of a :class:`ablate.analysis.tables.Table`: terminal, Markdown, LaTeX, CSV, HTML.

A cell reads ``77.86 ± 0.16 (n=5)``; with the paper's numbers
``77.86 ± 0.16 (5) | paper 77.86 ± 0.16 | Δ +0.00``. A cell with no finished seed shows ``—``;
a cell whose seeds include a diverged, collapsed or failed run carries a footnote mark explained
under the table (collapse is itself a result: Table 3's 36.62 is a collapsed run).
"""

from __future__ import annotations

import csv
import html as _html
import io
from collections.abc import Iterable, Sequence

from ablate.analysis.tables import Table, TableCell
from ablate.errors import UserError
from ablate.results.schema import COLLAPSE_Z_STD

MISSING = "—"
MARKS = {"diverged": "†", "collapsed": "‡", "failed": "§", "stopped": "¶"}
LEGEND = {
    "diverged": "a seed diverged (non-finite loss) and is left out of the mean",
    "collapsed": f"a seed collapsed (pretraining: z_std < {COLLAPSE_Z_STD:g}; theory: every eigenvalue of F below "
    "collapse_tol); it is in the mean: collapse is a result",
    "failed": "a seed failed with an error and is left out of the mean (see `ablate status`)",
    "stopped": "a seed collapsed and the sweep's stop_collapsed ended it at the epoch shown; it is left out of the "
    "mean (its numbers are of that epoch, not of a full run)",
    "missing": "no finished seed yet",
}
LATEX_MARKS = {"diverged": r"^\dagger", "collapsed": r"^\ddagger", "failed": r"^\S", "stopped": r"^\P"}  # in $...$


def _num(x: float | None, d: int, sign: bool = False) -> str:
    if x is None:
        return MISSING
    x = round(x, d) + 0.0  # no "-0.00"
    return f"{x:+.{d}f}" if sign else f"{x:.{d}f}"


def _n(cell: TableCell, paper: bool) -> str:
    n = f"{cell.n}/{cell.expected}" if cell.expected is not None and cell.expected != cell.n else str(cell.n)
    return f"({n})" if paper else f"(n={n})"


def stat_text(cell: TableCell, d: int, paper: bool = False, pm: str = " ± ") -> str:
    """``77.86 ± 0.16 / 93.10 (n=5)`` or ``— (n=0/5)``, then ``collapsed at epoch 7`` for seeds the
    sweep's stop_collapsed ended; without marks."""
    stopped = _stopped_text(cell)
    if cell.mean is None:
        if stopped:
            return stopped
        return f"{MISSING} {_n(cell, paper)}" if cell.expected else MISSING
    s = _num(cell.mean, d) + (f"{pm}{_num(cell.std, d)}" if cell.std is not None else "")
    if cell.top5 is not None:
        s += f" / {_num(cell.top5, d)}"
    return f"{s} {_n(cell, paper)}" + (f"; {stopped}" if stopped else "")


def _stopped_text(cell: TableCell) -> str:
    """``collapsed at epoch 7``, ``collapsed at epochs 5, 7 (2 seeds)``, or "" when no seed was stopped."""
    e = cell.stopped_at
    if not e:
        return ""
    where = f"epoch {e[0]}" if len(set(e)) == 1 else f"epochs {', '.join(map(str, e))}"
    return f"collapsed at {where}" + (f" ({len(e)} seeds)" if len(e) > 1 else "")


def paper_text(cell: TableCell, d: int, pm: str = " ± ", delta: str = "Δ") -> list[str]:
    """``["paper 77.86 ± 0.16", "Δ +0.00"]`` (Δ only where both numbers exist)."""
    p = cell.paper
    if p is None:
        return [f"paper {MISSING}"]
    pd_ = min(d, 2)  # the paper prints 2 decimals (1 for ImageNet): do not invent more
    text = f"paper {p.mean:.{pd_}f}" + (f"{pm}{p.std:.{pd_}f}" if p.std is not None else "")
    if p.top5 is not None:
        text += f" / {p.top5:.{pd_}f}"
    out = [text]
    if cell.diff is not None:
        out.append(
            f"{delta} {_num(cell.diff, d, sign=True)}"
            + (f" / {_num(cell.diff_top5, d, sign=True)}" if cell.diff_top5 is not None else "")
        )
    return out


def marks(cell: TableCell, table: dict[str, str] = MARKS) -> str:
    return "".join(m for f, m in table.items() if f in cell.flags)


def cell_text(table: Table, cell: TableCell | None, sep: str = " | ") -> str:
    if cell is None:
        return ""  # not part of this sweep's design
    d = table.spec.digits
    s = stat_text(cell, d, table.with_paper) + marks(cell)
    return sep.join([s, *paper_text(cell, d)]) if table.with_paper else s


def _grid(table: Table, sep: str = " | ") -> tuple[list[str], list[list[str]]]:
    head = [table.rows_title(), *(table.col_label(c) for c in table.col_values)]
    body = [
        [table.row_label(r), *(cell_text(table, table.cells.get((r, c)), sep) for c in table.col_values)]
        for r in table.row_values
    ]
    return head, body


def legend(table: Table) -> list[str]:
    return [f"{MARKS.get(f, MISSING)} {LEGEND[f]}" for f in (*MARKS, "missing") if f in table.flags]


def terminal(table: Table) -> str:
    """Aligned columns; with the paper's numbers each row spans three lines (ours, paper, Δ)."""
    head, body = _grid(table, "\n")
    grid = [[v.split("\n") for v in r] for r in body]
    widths = [max(len(line) for r in [[[h] for h in head], *grid] for line in r[i]) for i in range(len(head))]
    fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    lines = [table.caption, "", fmt(head), "  ".join("-" * w for w in widths)]
    for i, r in enumerate(grid):
        height = max(len(v) for v in r)
        if height > 1 and i:
            lines.append("")
        lines += [fmt([v[k] if k < len(v) else "" for v in r]) for k in range(height)]
    notes = legend(table)
    return "\n".join(lines + ([""] + notes if notes else []))


def md_cell(text: object) -> str:
    """``text`` as one cell of a Markdown table: ``|`` escaped as ``\\|`` (GitHub-flavoured Markdown's
    rule, which keeps the text as written) and line breaks as spaces (a row is one line)."""
    return " ".join(str(text).replace("|", "\\|").splitlines())


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> str:
    """The one Markdown table writer of ablate (tables, reports): a header, its alignment row (the
    columns ``right`` right-aligned, the others left) and one line per row, every cell :func:`md_cell`."""
    right = set(right)
    line = lambda cells: "| " + " | ".join(md_cell(c) for c in cells) + " |"  # noqa: E731
    align = "|" + "|".join("---:" if i in right else ":---" for i in range(len(header))) + "|"
    return "\n".join([line(header), align, *(line(r) for r in rows)])


def markdown(table: Table) -> str:
    head, body = _grid(table)
    lines = [f"**{md_cell(table.caption)}**", "", markdown_table(head, body, right=range(1, len(head)))]
    notes = legend(table)
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else []))


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "<": r"$<$",
    ">": r"$>$",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "—": "---",
    "×": r"$\times$",
}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def latex(table: Table) -> str:
    d = table.spec.digits

    def cell(c: TableCell | None) -> str:
        if c is None:
            return ""
        m = marks(c, LATEX_MARKS)
        if c.mean is None:
            s = "---" + (f"${m}$" if m else "")
        else:
            s = f"${c.mean:.{d}f}" + (rf" \pm {c.std:.{d}f}" if c.std is not None else "")
            s += f"{m}$" if c.top5 is None else f"$ / ${c.top5:.{d}f}{m}$"
        s += rf"\,{{\scriptsize {_tex(_n(c, True))}}}"
        if table.with_paper:
            s += r" {\scriptsize (" + "; ".join(_tex(p) for p in paper_text(c, d)) + ")}"
        return s

    ncol = len(table.col_values)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_tex(table.caption)}}}",
        rf"\begin{{tabular}}{{l{'c' * ncol}}}",
        r"\toprule",
        " & ".join([_tex(table.rows_title())] + [_tex(table.col_label(c)) for c in table.col_values]) + r" \\",
        r"\midrule",
    ]
    for r in table.row_values:
        lines.append(
            " & ".join([_tex(table.row_label(r))] + [cell(table.cells.get((r, c))) for c in table.col_values]) + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = [
        (f"${LATEX_MARKS[f]}$" if f in LATEX_MARKS else "---") + f" {_tex(LEGEND[f])}"
        for f in (*MARKS, "missing")
        if f in table.flags
    ]
    if notes:
        lines.append(r"\par\smallskip{\footnotesize " + r"\quad ".join(notes) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def csv_text(table: Table) -> str:
    """Tidy: one line per cell, with the row / column key values, for scripts."""
    keys = [*table.spec.rows, *table.spec.cols]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "sweep",
            "row",
            "col",
            *keys,
            "metric",
            "mean",
            "std",
            "n",
            "expected",
            "top5",
            "flags",
            "paper_table",
            "paper_mean",
            "paper_std",
            "paper_top5",
            "diff",
        ]
    )
    f = lambda x: "" if x is None else f"{x:.4f}"  # noqa: E731
    for r in table.row_values:
        for c in table.col_values:
            cell = table.cells.get((r, c))
            if cell is None:
                continue
            p = cell.paper
            w.writerow(
                [
                    table.sweep,
                    table.row_label(r),
                    table.col_label(c),
                    *r,
                    *c,
                    table.spec.metric,
                    f(cell.mean),
                    f(cell.std),
                    cell.n,
                    "" if cell.expected is None else cell.expected,
                    f(cell.top5),
                    ";".join(sorted(cell.flags)),
                    p.table if p else "",
                    f(p.mean) if p else "",
                    f(p.std) if p else "",
                    f(p.top5) if p else "",
                    f(cell.diff),
                ]
            )
    return buf.getvalue()


def html(table: Table) -> str:
    """An HTML fragment (a ``<table>`` with caption and legend); the report embeds it."""
    e = _html.escape
    head, _ = _grid(table)
    out = [
        '<table class="ablate-table">',
        f"<caption>{e(table.caption)}</caption>",
        "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead>",
        "<tbody>",
    ]
    for r in table.row_values:
        tds = [f'<th scope="row">{e(table.row_label(r))}</th>']
        for c in table.col_values:
            cell = table.cells.get((r, c))
            cls = " ".join(sorted(cell.flags)) if cell else "absent"
            text = e(cell_text(table, cell, " | ")).replace(" | ", "<br>") if cell else ""
            tds.append(f'<td class="{cls}">{text}</td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    notes = legend(table)
    if notes:
        out.append('<p class="legend">' + "<br>".join(e(n) for n in notes) + "</p>")
    return "\n".join(out)


RENDERERS = {"terminal": terminal, "markdown": markdown, "latex": latex, "csv": csv_text, "html": html}
TABLE_FORMATS = tuple(RENDERERS)


def render(table: Table, fmt: str = "terminal") -> str:
    """The table as text: terminal (default), markdown, latex, csv or html."""
    if fmt not in RENDERERS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(TABLE_FORMATS)}")
    return RENDERERS[fmt](table)
