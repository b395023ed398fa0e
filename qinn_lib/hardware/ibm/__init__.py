"""The trained QINN on real IBM devices' noise (floor 5, a room of ``hardware``): Qiskit's fake
backends carry a real calibration snapshot, Qiskit Aer simulates it, Qiskit's transpiler routes
the circuits onto the device's coupling map and native gates.

Needs the optional extra ``pip install -e ".[hardware]"`` (Qiskit, Qiskit Aer, Qiskit IBM
Runtime). Only :mod:`extra`, :mod:`placement` and :mod:`device_field` import without it; every other module here says
in one line what is missing. Nothing else in the package imports this room (an import-linter
contract in pyproject.toml), so the base install and the quick profile never need Qiskit.

- ``extra``             is the extra installed? one clear line naming the install command if not
- ``backends``          the fake IBM backends by name, their calibration, the Aer simulators
- ``qiskit_circuits``   the QINN's forward and inverse circuits in Qiskit, event angles as Parameters
- ``routing``           transpile once per backend (coupling map, native gates), resources after routing
- ``sampler``           all events of a sample in batched sampler calls, kept on disk, resumable
- ``mitigation``        readout-error mitigation from a measured per-qubit calibration matrix
- ``backend_qinn``      a trained QINN run on a backend, both directions (a ``hardware.device.DeviceQINN``)
- ``qasm``              OpenQASM 2 (one event's angles baked in) and OpenQASM 3 (angles as inputs) export
- ``study``             one backend measured against exact simulation (notebook 07, "On a real device's noise")
- ``placement``         where a device sits on notebook 07's uniform-noise axis, and the verdict in words
- ``device_field``      the field's measures (FPD, KPD, boosted-tree AUCs) of the devices' samples, in words
- ``figures``           the section's figures
"""
