"""The loss terms of the paper, each a small pure function of tensors.

- ``nll``            eq. 7: negative log-likelihood under a standard normal latent
- ``mmd``            eq. 9-11: maximum mean discrepancy with Gaussian and Breit-Wigner kernels
- ``invertibility``  eq. 17-18 and 20: fidelity and MSE invertibility losses of the learned ISP
"""
