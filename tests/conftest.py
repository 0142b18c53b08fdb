import os
import sys
from pathlib import Path

# One torch thread per process: the suite runs on 2-core machines where several processes (DDP, concurrent CLI runs)
# share the cores; with torch's default thread pool the same tiny training varied from 4 s to 60 s. Set before torch
# is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")  # tests never talk to W&B servers

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # train.py and sweep.py live at the top level
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield
