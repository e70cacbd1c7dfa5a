"""`python -m mlscope` runs the command line."""

from mlscope.cli import main

main()
