"""``python -m qinn_lib.bench``: time one training step of every model (:mod:`qinn_lib.experiments.bench`)."""

from qinn_lib.experiments.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
