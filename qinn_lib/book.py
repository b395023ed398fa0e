"""``python -m qinn_lib.book``: build the web book of the committed reports (:mod:`qinn_lib.notebook.book`)."""

from qinn_lib.notebook.book import main

if __name__ == "__main__":
    raise SystemExit(main())
