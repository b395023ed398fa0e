"""The classical baseline: an INN of cubic-spline coupling blocks (sec. 2 of the paper; sizes of Table 1).

- ``spline``    nflows' unconstrained cubic spline, rewritten mask-free (nflows stays the test oracle)
- ``coupling``  the coupling block and the soft permutation (FrEIA invertible modules)
- ``sizes``     Table 1's three sizes as plain data (no torch: run configurations read it)
- ``model``     :class:`~qinn_lib.models.inn.model.INN` of 2k / 6k / 16k parameters, and a lockstep stack of seeds
"""
