"""``python -m qinn_lib.events``: generate (or load) the event sample and print a summary."""

from qinn_lib.events.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
