"""Sphinx configuration of lsm's documentation: the API reference from the docstrings (numpydoc)
and pages in Markdown (MyST), some of them sections of the README included as they are.

Build it with ``python -m sphinx -W -b html docs build/docs`` (``tests/test_docs.py`` does, with
warnings as errors).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout builds without installing

import lsm

project = "lsm"
author = "the lsm developers"
copyright = "2026, the lsm developers"
version = release = lsm.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

myst_heading_anchors = 3  # README links such as [Threads](#threads) resolve within a page
numpydoc_show_class_members = False
# The docstrings describe the parameters and results; the annotations (lsm/_typing.py, several
# overloads a function) are for type checkers and would bury the signatures.
autodoc_typehints = "none"
html_theme = "alabaster"
html_title = f"lsm {release}"
