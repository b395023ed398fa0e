"""Sphinx settings of the web book (``python -m qinn_lib.book``, which stages the sources in
build/book/src and builds with ``-c docs``; see qinn_lib/notebook/book.py).

The committed notebooks are shown as they are: myst-nb executes nothing. Every asset is local
(MathJax 3.2.2 from sphinx-mathjax-offline; the theme's own files), so the book reads offline.
"""

from qinn_lib.notebook import book

project = "qinn"
author = "the qinn authors"
copyright = "2026 the qinn authors (MIT licence)"
html_title = "qinn: the reports"

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]  # README.md is included by index.md

# -- notebooks: the committed outputs, nothing re-run --------------------------------------------
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no widget runtime from a CDN: live panels are shown as stills (book.PANELS)
nb_merge_streams = True
nb_render_markdown_format = "myst"  # markdown outputs: math typeset, links to pages resolved
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # README links such as (#app) resolve to its headings

# -- math: MathJax shipped in the build ----------------------------------------------------------
html_static_path = ["_static", str(book.mathjax_static())]  # the second holds mathjax/
mathjax_path = "mathjax/tex-chtml.js"

# -- theme ---------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
# light: the figures are drawn on white (an unset mode also logs a console error on a first visit)
html_context = {"default_mode": "light"}
html_css_files = ["book.css"]
html_favicon = "_static/favicon.svg"
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = False
