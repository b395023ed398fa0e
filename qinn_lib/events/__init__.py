"""The events (floor 1): where the five features come from and what they mean.

- ``sample``        an event sample: the paper's cuts, the train/val/test split, its fingerprint
- ``pythia``        pp -> Z(-> l+ l-) j generated with Pythia 8 at parton level (sec. 4, eq. 23)
- ``lhe``           reading a user's LHE file (e.g. MadGraph, as in the paper)
- ``feature_files`` reading a user's own (N, 5) feature array (.npy / .npz / .csv)
- ``cache``         the event cache: ``load_events`` (Pythia), ``load_lhe_events``, ``load_sample`` (either)
- ``observables``   the five features and the physics reconstructed from them (M_ll, Delta R, p_z, ...)
- ``scaling``       the paper's scaling of every feature to [0, pi] and its exact inverse
- ``fits``          line-shape fits of the Z peak (Breit-Wigner)
- ``cli``           ``python -m qinn_lib.events``

Imports only the root utilities (``qinn_lib.errors``, ``paths``, ``atomic``).
"""
