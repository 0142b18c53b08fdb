"""`python train.py ...` in a checkout is `kp train ...` (kp/cli/train.py): see `python train.py --help`."""

from kp.cli.train import main

if __name__ == "__main__":
    main()
