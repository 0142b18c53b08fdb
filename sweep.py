"""Sweeps: a Hydra multirun of train.py, e.g. `python sweep.py -m model=unet,simple_cnn optimizer.lr=1e-3,3e-4`.
Each job gets its own directory under logs/<task_name>/multiruns/<time>/<job number>/."""

from train import main

if __name__ == "__main__":
    main()
