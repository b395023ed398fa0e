# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-widgets
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # qinn — explore the circuit and a trained QINN
#
# The two live panels of notebook 02 as an app (`python -m qinn_lib.app`, or
# `voila notebooks/explore.ipynb` from the repository root). This page has a kernel of its own,
# and everything you fit is written to a folder of its own (named below): nothing you do here
# changes the reports, or another visitor's page.

# %%
from qinn_lib.notebook import app

session = app.start_session()
explorer, viewer = app.panels(session)
print(session.describe())

# %% [markdown]
# ## Depth explorer
# How deep must the circuit be? Choose a depth and press **fit**: a fresh QINN of that depth is
# trained on the invertibility loss alone (eq. 20) for the given number of Adam steps, and the
# comparison shows how well its learned inverse state preparation undoes it and how widely the
# measured $P(q=1)$ spread over the events. Every fit is kept: fit several depths, or several
# seeds at one depth to see the spread. **stop** ends a fit early (it is then not kept).

# %%
explorer.widget

# %% [markdown]
# ## Look inside a trained QINN
# Choose a trained QINN — one shipped with the package, or a finished run of notebook 03 under
# `build/runs` — and **load** it: its generated $M_{\ell\ell}$ and $\Delta R_{\ell\ell}$ against the
# test events, then, for the test event you pick, its full Jacobian $\partial z/\partial x$ and the
# round trip $x \to z \to \tilde x$ through the learned inverse.

# %%
viewer.widget
