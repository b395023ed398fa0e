"""``python -m qinn_lib.reports``: run the notebooks as reports (:mod:`qinn_lib.notebook.runner`)."""

from qinn_lib.notebook.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
