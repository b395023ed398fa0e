"""``python -m qinn_lib.runs``: train notebook 05's ensembles ahead of the report, or show how far
they have got (``--status``) (:func:`qinn_lib.experiments.plans.main`)."""

from qinn_lib.experiments.plans import main

if __name__ == "__main__":
    raise SystemExit(main())
