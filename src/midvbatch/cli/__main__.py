"""``python -m midvbatch.cli``: the command line, as the ``midvbatch`` console script runs it."""

from midvbatch.cli import main

main()
