"""Train a keypoint model: `python train.py [group=option ...] [key=value ...]` (see `python train.py --help`); the
same as `kp train ...`.

Composes the Hydra config in conf/ and runs kp.training.train: fit with Lightning, test the best checkpoint, and leave
in the run directory checkpoints/ (best and last.ckpt, each usable on its own with `kp.load`), csv/metrics.csv,
metrics.json, predictions.png, run_info.json and .hydra/ (the resolved config and the overrides).
Resume with ckpt_path=last (the newest run of the same task_name) or ckpt_path=<file>.
"""

from kp.training import main

if __name__ == "__main__":
    main()
