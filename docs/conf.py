"""Sphinx configuration of the cloudcov documentation (built in CI with -W --keep-going)."""
from __future__ import annotations

import cloudcov

project = "cloudcov"
author = "cloudcov developers"
copyright = "2026, cloudcov developers"
version = release = cloudcov.__version__

templates_path = ["_templates"]

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]

# API reference generated from the docstrings of the installed package
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Markdown (README, tutorial) and notebooks: rendered as committed, never executed here
myst_heading_anchors = 3
nb_execution_mode = "off"
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["myst.header"]   # the README starts at its own H1 and skips levels

intersphinx_mapping = {}              # CI builds offline: no remote inventories

html_theme = "pydata_sphinx_theme"
html_title = f"cloudcov {release}"
