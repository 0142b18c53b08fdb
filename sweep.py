"""`python sweep.py ...` in a checkout is `kp sweep ...` (kp/cli/sweep.py), e.g. `python sweep.py -m
model=unet,hourglass`."""

from kp.cli.sweep import main

if __name__ == "__main__":
    main()
