"""``python -m midvbatch`` and the ``midvbatch`` console script.

A Ctrl-C that arrives while Python is still importing the command line exits 130 with
one line: the handler is set before anything heavy is imported.
"""

import os
import signal


def _interrupted_early(signum, frame):  # pragma: no cover - timing dependent
    try:
        os.write(2, b"interrupted; nothing was lost: run the same command again to go on\n")
    finally:
        os._exit(130)


def entry() -> None:
    """Run the command line (see midvbatch.cli.main)."""
    signal.signal(signal.SIGINT, _interrupted_early)
    from midvbatch.cli import main

    main()


if __name__ == "__main__":
    entry()
