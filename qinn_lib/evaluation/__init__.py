"""Evaluation (floor 4): how good is a trained generative model, and where the numbers are kept.

- ``distances``        1-d distances between generated and true events (JS, W1), peak and tails
- ``two_sample``       the classifier two-sample test (AUC of a small MLP)
- ``boosted_two_sample`` the boosted-tree classifier two-sample test (cross-validated AUC)
- ``physics_distances`` the field's FPD and KPD (Kansal et al. 2023)
- ``normalisation``    the density's normalisation Z over the box, the normalised NLL, det J signs
- ``evaluate``         one trained model against the test split (NLL, distances, AUC, reconstruction,
                       the field's measures and their truth-vs-truth floor)
- ``records``          per-model result records and their files (``models_NN.json``)
- ``ensemble_tables``  seed ensembles as tables: means and spreads over seeds
- ``statistics/``      the tests behind every verdict: Welch / paired t on each metric's declared scale,
                       exact permutation / signed-rank checks, bootstrap intervals, TOST, Holm, seeds needed
- ``diagnostics``      inside a trained QINN: folds of the forward map, the Fourier check, readings
- ``results``          the results store ``results.json``: what the notebooks and the benchmark measured

A new metric is a new module here.
"""
