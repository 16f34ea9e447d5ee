"""Sphinx configuration of the documentation site (`make docs` builds it into site/).

Pages are Markdown (MyST), so every page also reads on GitHub as it is; the Python API page is
autodoc of ``ablate.api`` (its docstrings are reST, their examples the doctests
tests/integration/test_api.py runs). ``make docs`` runs with -W: a broken link or anchor, a page in
no table of contents, a stale generated reference or a sweep example that does not load is an error.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "tools")]  # this checkout's ablate, and the docs' own tools

project = "ablate"
author = "the ablate authors"
copyright = "2026, the ablate authors"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx_checks"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["tools", "_build"]

myst_heading_anchors = 4  # GitHub's slugs for headings down to ####, so page.md#anchor links work in both
myst_enable_extensions = ["colon_fence"]

add_module_names = False  # ablate.api.table is ablate.table: the names a notebook uses
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True}

html_theme = "furo"
html_title = "ablate"
html_favicon = "_static/favicon.svg"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
pygments_style = "sphinx"
highlight_language = "text"  # a block without a language is shown as written (outputs, file trees)
# A JSON or YAML block with "..." elisions cannot be lexed strictly; Pygments falls back to relaxed
# highlighting, which is right for an elided example, so that warning alone is not an error.
suppress_warnings = ["misc.highlighting_failure"]
