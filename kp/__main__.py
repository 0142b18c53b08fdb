"""`python -m kp <command> ...` is `kp <command> ...` (kp/cli)."""

from kp.cli import main

main()
