"""`python -m plangate` is the `plangate` command."""

from plangate.cli import main

main()
