"""``python -m qinn_lib.app``: serve notebook 02's live panels as a Voila app (:mod:`qinn_lib.notebook.app`)."""

from qinn_lib.notebook.app import main

if __name__ == "__main__":
    raise SystemExit(main())
