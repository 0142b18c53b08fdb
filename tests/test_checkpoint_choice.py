"""The checkpoint a run keeps (and tests, and reports in metrics.json) is the best epoch by its configured metric,
also in a multi-task run; nme_count is NME + count MAE / count_scale; with WeightEMA the average is validated, kept
and tested, and a resumed run ends with the same average; the cards preset picks by nme_count."""

import json

import pandas as pd
import pytest
import torch

from kp.metrics import nme_plus_count
from kp.train.loop import train
from tests.helpers import TINY_DATA, compose_config

TINY_MULTITASK = [
    "experiment=synthetic_multitask",
    *TINY_DATA,
    "model.backbone.width=4",
    "data.dataset.image_size=32",
    "trainer.max_epochs=4",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "+callbacks.model_checkpoint.save_top_k=-1",  # every epoch's checkpoint: the test can tell which one was chosen
]


def test_nme_plus_count_adds_the_count_as_a_fraction_of_the_pack():
    assert float(nme_plus_count(torch.tensor(0.01), torch.tensor(2.6), 52.0)) == pytest.approx(0.01 + 0.05)


# the cards preset's choice, and a choice no default would make (the worst NME): the configured metric and mode rule
@pytest.mark.parametrize(("metric", "mode"), [("val/nme_count", "min"), ("val/nme", "max")])
def test_multitask_run_keeps_and_tests_the_best_epoch_of_its_configured_metric(metric, mode, tmp_path):
    cfg = compose_config(
        *TINY_MULTITASK,
        "callbacks=weight_ema",
        f"optimized_metric={metric}",
        f"optimized_mode={mode}",
        output_dir=tmp_path,
    )
    best = train(cfg)
    val = pd.read_csv(tmp_path / "csv" / "metrics.csv").dropna(subset=[metric]).set_index("epoch")
    assert len(val) == 4
    scale = cfg.data.dataset.max_count  # the synthetic data's count_scale
    assert val["val/nme_count"].to_numpy() == pytest.approx((val["val/nme"] + val["val/count_mae"] / scale).to_numpy())
    epoch = int(val[metric].idxmin() if mode == "min" else val[metric].idxmax())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["chosen_by"] == f"{metric} ({mode})"
    assert metrics["best_checkpoint"] == str(tmp_path / "checkpoints" / f"epoch_{epoch:03d}.ckpt")
    assert metrics[f"best/{metric}"] == pytest.approx(best) == pytest.approx(val[metric][epoch], abs=1e-6)
    # The checkpoint holds the average (state_dict) beside the raw weights; the test scored the average, as the
    # evaluation report (kp.load: state_dict) does.
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=False)
    raw, average = checkpoint["current_model_state"], checkpoint["state_dict"]
    assert any(not torch.equal(raw[k], average[k]) for k in average if average[k].is_floating_point())
    report = json.loads((tmp_path / "eval" / "test" / "metrics.json").read_text())
    assert report["test/count_mae"] == pytest.approx(metrics["test/count_mae"], rel=1e-4)
    assert report["test/nme"] == pytest.approx(metrics["test/nme"], rel=1e-4)


def test_cards_preset_chooses_its_checkpoint_by_nme_plus_count_on_averaged_weights():
    cfg = compose_config("experiment=cards")
    assert cfg.optimized_metric == "val/nme_count" and cfg.optimized_mode == "min"
    assert cfg.callbacks.model_checkpoint.monitor == "val/nme_count"
    assert cfg.callbacks.weight_ema._target_ == "kp.train.callbacks.WeightEMA"


def test_a_run_with_the_weight_average_resumes_to_the_same_average_and_weights(tmp_path):
    common = [*TINY_MULTITASK, "callbacks=weight_ema", "trainer.max_epochs=2", "data.num_workers=0"]
    train(compose_config(*common, output_dir=tmp_path / "whole"))
    epoch_0 = tmp_path / "whole" / "checkpoints" / "epoch_000.ckpt"
    train(compose_config(*common, f"ckpt_path={epoch_0}", output_dir=tmp_path / "resumed"))
    whole, resumed = (
        torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=False) for name in ("whole", "resumed")
    )
    assert whole["global_step"] == resumed["global_step"] == 8
    for key in ("state_dict", "current_model_state"):  # the average, and the raw weights training goes on from
        for name, tensor in whole[key].items():
            assert torch.allclose(resumed[key][name].float(), tensor.float(), rtol=1e-3, atol=1e-5), (key, name)
