"""Experiments (floor 6): models trained and compared end to end, many runs at once.

- ``store``      the trained models shipped with the package (read side: find, load, verify)
- ``one_model``  one model end to end: prepare the data, train / resume / reload / load shipped
- ``cluster``    the Dask runner: maps jobs onto workers; knows no model
- ``dask_worker`` the embedded cluster's Dask worker (closed at most once)
- ``jobs``       training jobs: which runs train together, in which order, on the cluster
- ``ensembles``  seed ensembles: train many runs in one batch and evaluate each
- ``ablations``  controlled ablations of the Table 1 QINN
- ``search``     a budgeted two-objective search over QINN hyper-parameters (Optuna)
- ``journal``    the search's Optuna journal file, made to survive a torn write
- ``plans``      which runs each notebook needs (``python -m qinn_lib.runs``)
- ``publish``    shipping trained models with the package (``python -m qinn_lib.shipped``)
- ``bench``      the benchmark of one training step (``python -m qinn_lib.bench``)
"""
