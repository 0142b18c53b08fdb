"""scripts/benchmark_accuracy.py --quick (every preset runs end to end: trained, scored with and without flip, a
table row per goal metric) and the presets themselves: each composes and builds on its real data."""

import json

import pytest

from kp.build import build
from scripts import benchmark_accuracy  # scripts/ is importable from the repository root, as tests/ is
from tests.helpers import SHARED_DATA, compose_config, shared_data
from tests.test_data_cat import cats  # noqa: F401 (the fixture)


@pytest.mark.slow
def test_quick_run_of_the_cat_preset_writes_its_rows_with_and_without_flip(tmp_path, cats):  # noqa: F811
    rows = benchmark_accuracy.main(
        ["cat", "--quick", "--out", str(tmp_path), "--", f"data.dataset.root={cats}", "trainer.limit_train_batches=1"]
    )
    assert [r["metric"] for r in rows] == ["pck_0.05", "rmse"] and {r["split"] for r in rows} == {"test"}
    assert rows[0]["spread"] != rows[0]["spread"] and rows[0]["per seed"] == ""  # one run: no spread
    report = json.loads((tmp_path / "cat" / "eval" / "test" / "metrics.json").read_text())
    flipped = json.loads((tmp_path / "cat" / "eval" / "test_flip" / "metrics.json").read_text())
    assert rows[1]["value"] == report["test/rmse"] and rows[1]["with flip"] == flipped["test/rmse"]
    assert rows[0]["command"].startswith("python train.py experiment=cat trainer.max_epochs=1")
    assert rows[0]["images/s"] > 0 and rows[0]["goal"] == ""  # the cat preset has no goal: no CAT data here
    table = (tmp_path / "accuracy.md").read_text()
    assert table.count("\n") == 4 and "| cat | test | rmse |" in table


@pytest.mark.slow
def test_quick_run_of_the_dlc_preset_reports_rmse_in_the_frames_pixels(tmp_path):
    shared_data("dlc_reaching")
    rows = benchmark_accuracy.main(["dlc", "--quick", "--out", str(tmp_path)])
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["rmse_source_px"]["goal"] == "<= 5" and by_metric["pck_0.05"]["met"] in ("yes", "no")
    assert by_metric["worst_part_ratio"]["value"] >= 1.0
    # the frames (832×747, 640×470) are shrunk to fit 320×256: an error in their pixels is larger
    assert by_metric["rmse_source_px"]["value"] > by_metric["rmse"]["value"]


@pytest.mark.parametrize("name", [n for n in benchmark_accuracy.PRESETS if n != "cat"])
def test_every_preset_builds_on_its_real_data(name):
    preset = benchmark_accuracy.PRESETS[name]
    shared_data(preset.data)
    cfg = compose_config(f"experiment={name}", f"paths.data_dir={SHARED_DATA}")
    datamodule, module = build(cfg)
    assert cfg.task_name == name and len(datamodule.splits[preset.split]) > 0
    assert module.net.backbone.__class__.__name__ == "EfficientNetLite0"


def test_split_seeds_and_training_seeds_are_one_or_the_other(capsys):
    with pytest.raises(SystemExit):
        benchmark_accuracy.main(["cards", "--seeds", "0", "--train-seeds", "0"])
    assert "not allowed with argument" in capsys.readouterr().err
