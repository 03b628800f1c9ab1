"""`python -m service …` runs the CLI (how `serve` starts its local worker processes)."""

from service.cli import main

main()
