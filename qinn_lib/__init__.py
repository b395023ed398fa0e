"""qinn: Generative Invertible Quantum Neural Networks (Rousselot & Spannowsky, 2023), reproduced.

The library is a house with floors; a module imports only from its own floor and the floors below
(``import-linter`` checks it, see ``pyproject.toml`` and the README's *Architecture*):

====  ================  ===========================================================================
 7    ``notebook/``     profiles, the reports runner, plots, widgets and panels, the JupyterLab extension
 6    ``experiments/``  one model end to end, the shipped-model store, Dask jobs, ensembles, ablations,
                        the search, which runs each notebook needs, the benchmark
 5    ``hardware/``     shots, gate noise, emulated devices and their sweeps, circuit resources
 4    ``evaluation/``   distances, two-sample tests, records, ensemble tables, QINN diagnostics, results
 3    ``training/``     run configurations, quick vs paper counts, losses, objectives, the training loop,
                        checkpoints
 2    ``models/``       the QINN (PennyLane reference and fast simulation), the re-uploading flow, the
                        spline INN
 1    ``events/``       Pythia and LHE events, the cache, observables, the [0, pi] scaling, line-shape fits
 0    root              small shared utilities: ``errors``, ``paths``, ``atomic``, ``threads``,
                        ``settings`` (what the environment says), ``compiling`` (the torch.compile policy)
====  ================  ===========================================================================

The commands users type are thin modules at the root, above every floor: ``python -m
qinn_lib.reports``, ``qinn_lib.shipped``, ``qinn_lib.bench``, ``qinn_lib.runs``, ``qinn_lib.lab``;
``python -m qinn_lib.events`` generates the events.
"""

__version__ = "0.1.0"
