"""The quantum invertible neural network (sec. 3 of the paper).

- ``circuits``     PennyLane definitions of every circuit: the readable, drawable reference and the
                   test oracle of everything faster
- ``simulator``    the state-vector pieces of the fast path: rotations, product states, the CNOT ring
- ``autograd``     hand-written backward passes of the circuit (the fast path's gradients)
- ``model``        :class:`~qinn_lib.models.qinn.model.QINN`: encoding, circuit, measurement, learned ISP
- ``statevector``  the same circuit simulated gate by gate (the path for wide circuits)
- ``path_by_width`` which of the two simulations to use for a width, and a dispatcher
- ``reuploading``  a flow whose circuit re-uploads the input (notebook 06's function-class check)
"""
