"""Hardware (floor 5): the trained QINN on an emulated quantum computer.

- ``shots``      finite shots: multinomial sampling of measured probabilities, parameter-shift Jacobian
- ``noise``      gate noise (depolarising, amplitude damping) as density matrices
- ``device``     a device (shots and/or noise) and a trained QINN run on it, both directions
- ``sweeps``     metric sweeps over devices and the "as good as exact simulation" verdict (notebook 07)
- ``equivalence`` that verdict's tests: TOST against declared margins, paired, at a stated level
- ``sweep_figures`` the sweep's figures (metric against shots or noise, with the margin band)
- ``field_measures`` the field's measures (FPD, KPD, boosted-tree AUCs) on the sweep, and what they change
- ``resources``  circuit resources and the cost of the paper's tasks on a device
- ``ibm/``       the QINN on calibrated IBM device models: routing, Aer's noise, readout mitigation,
                 OpenQASM export (the optional ``[hardware]`` extra; nothing else imports it)

A new device is a new module here.
"""
