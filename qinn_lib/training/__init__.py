"""Training (floor 3): what a run is and how it is trained, for every model alike.

- ``config``      one self-validating dataclass per run configuration (the notebooks' papermill parameters)
- ``budget``      the one helper that decides quick vs paper counts
- ``losses/``     the paper's loss terms: NLL (eq. 7), MMD (eq. 9-11), fidelity and MSE invertibility (eq. 18, 20)
- ``objectives``  the objectives that combine them, one per model family
- ``optimiser``   one-cycle Adam, per-epoch seeds
- ``inputs``      checks of the data a run is given
- ``checkpoints`` checkpoints and run folders (sha256, locks, atomic writes)
- ``loop``        the training loop: train, resume, early stop; INN seeds in lockstep
"""
