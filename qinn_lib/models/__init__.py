"""The models (floor 2): invertible networks, quantum and classical, that know nothing of training.

- ``qinn/``  the QINN (sec. 3): PennyLane reference circuits, the fast batched simulation, the model,
  and the data re-uploading flow
- ``inn/``   the classical baseline: a cubic-spline coupling INN (FrEIA blocks, nflows' spline math)

A new model is a new module (or folder) here; it is built from plain arguments (``from_config``
reads the fields it needs from any run configuration) and imports only ``events`` and the root.
"""
