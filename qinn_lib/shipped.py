"""``python -m qinn_lib.shipped``: list, verify, refresh and publish the trained models shipped with
the package (:mod:`qinn_lib.experiments.publish`; the store itself is :mod:`qinn_lib.experiments.store`)."""

from qinn_lib.experiments.publish import main

if __name__ == "__main__":
    raise SystemExit(main())
