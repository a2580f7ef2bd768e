"""``python -m vaekit`` (and ``torchrun -m vaekit``): the command line."""

from vaekit.cli import main

main()
