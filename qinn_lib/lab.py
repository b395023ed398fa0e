"""``python -m qinn_lib.lab install | status``: the JupyterLab extension that opens the committed
reports read-only (:mod:`qinn_lib.notebook.lab`).

This is also the module name the extension is enabled under in the environment's Jupyter config
(``jpserver_extensions: {"qinn_lib.lab": true}``), so it hands on the server's hooks: a config
file written before the library was layered keeps working.
"""

from qinn_lib.notebook.lab import (  # noqa: F401
    _jupyter_server_extension_points,
    _load_jupyter_server_extension,
    load_jupyter_server_extension,
    main,
)

if __name__ == "__main__":
    raise SystemExit(main())
