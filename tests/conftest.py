import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # train.py and sweep.py live at the top level

os.environ.setdefault("WANDB_MODE", "offline")  # tests never talk to W&B servers


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield
