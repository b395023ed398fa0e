"""The notebook floor (7): what the notebooks and their reports runner need on top of the library.

- ``profiles``        how a running notebook learns its profile and output folder
- ``parameters``      the notebooks, their parameters cells and configuration classes
- ``runner``          runs the notebooks through papermill (``python -m qinn_lib.reports``)
- ``readme``          the README's results table, regenerated from the results store
- ``plots``           figures with ratio panels, saved through ``paths``
- ``widgets``         shared pieces of the live panels (PNG images, background jobs)
- ``depth_explorer``  notebook 02's depth explorer
- ``model_viewer``    notebook 02's look inside a trained QINN
- ``gap``             notebook 06's findings as tested statements
- ``lab``             the JupyterLab extension: the committed reports open read-only
"""
