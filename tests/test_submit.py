import csv

import pytest
import torch

from kp.build import build
from kp.predict.submit import submit
from kp.train.loop import train
from tests.helpers import TINY_DATA, compose_config, shared_data, write_run_config


def test_submission_from_a_trained_run_answers_every_lookup_row(tmp_path):
    root = shared_data("facial_kaggle_format")
    run_dir = tmp_path / "run"
    cfg = compose_config(
        "data=facial",
        "debug=limit",
        "trainer.max_epochs=1",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "model.backbone.width=4",
        "callbacks.progress_bar=null",
        f"data.dataset.cache_dir={tmp_path / 'cache'}",
        "data.dataset.split_by=row",  # the rows this 1-epoch, width-4 model learns varied points from (by look-alike
        # groups its training rows differ, and it predicted a constant face: the check below is of the submission)
        output_dir=run_dir,
    )
    train(cfg)
    write_run_config(cfg, run_dir)

    out = submit(run_dir, tmp_path / "submission.csv")
    with open(root / "IdLookupTable.csv", newline="") as file:
        wanted = [row["RowId"] for row in csv.DictReader(file)]
    with open(out, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["RowId"] for row in rows] == wanted
    values = [float(row["Location"]) for row in rows]
    # real, varied predictions: one constant face would give at most 30 distinct values (15 points × 2)
    assert all(0.0 <= v <= 96.0 for v in values) and len(set(values)) > 45


def test_submission_refuses_a_model_of_other_data(tmp_path):
    _, module = build(compose_config(*TINY_DATA, "model.backbone.width=4", output_dir=tmp_path))
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, tmp_path / "synthetic.ckpt")
    with pytest.raises(ValueError, match="needs data=facial"):
        submit(tmp_path / "synthetic.ckpt", tmp_path / "submission.csv", data_dir=tmp_path)
