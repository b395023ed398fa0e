"""qinn: Generative Invertible Quantum Neural Networks (Rousselot & Spannowsky, 2023), reproduced.

Modules say what they hold:

- ``paths``          where data, checkpoints, reports and figures live (rooted at the repo, never the CWD)
- ``profiles``       the one place that decides quick vs paper iteration counts, and how a notebook
                     learns its profile and output folder (set by the runner, never a parameter)
- ``config``         self-validating run-configuration dataclasses (papermill parameter sets)
- ``data``           pp -> Z(->l+l-) j events from Pythia 8 (or a user's LHE file), cuts, splits, cache
- ``observables``    the five features and the physics reconstructed from them (M_ll, Delta R, ...)
- ``preprocessing``  the paper's scaling of every feature to [0, pi] and its exact inverse
- ``circuits``       PennyLane definitions of every circuit (the readable reference)
- ``qinn``           the QINN model with a fast batched torch simulation of those circuits
- ``losses``         NLL, MMD (Gaussian and Breit-Wigner kernels), MSE and fidelity invertibility
- ``train``          one training loop for every model: one-cycle Adam, checkpoints, resume
- ``plots``          figures with ratio panels, saved through ``paths``
- ``shipped``        trained models shipped with the package (``shipped_models/``, sha256 manifest)
- ``widgets``        shared pieces of the notebook panels (PNG images, background jobs)
- ``depth_explorer`` notebook 02's depth explorer (invertibility fits per depth and seed)
- ``model_viewer``   notebook 02's look inside a trained QINN (distributions, Jacobian, round trip)
- ``lab``            JupyterLab server extension: the committed reports open read-only
- ``reports``        runs the notebooks through papermill (``python -m qinn_lib.reports``)
- ``shots``          finite shots: multinomial sampling of measured probabilities, parameter-shift Jacobian
- ``noise``          gate noise (depolarising, amplitude damping) as density matrices; default.mixed reference
- ``hardware``       a trained QINN run on an emulated device (shots and/or noise), both directions
- ``hardware_eval``  metric sweeps over devices and the "as good as exact simulation" verdict (notebook 07)
- ``resources``      circuit resources (qubits, CNOTs, depth) and the cost of the paper's tasks on a device
"""

__version__ = "0.1.0"
