"""Label Studio's JSON: the tasks kp refine writes for labelling, and the export read back.

A task is one frame: `data.image` the image's URL as Label Studio's local-files storage serves it, `data.kp_image`
the frame's path in the job (labeled-data/<video>/img<frame>.png), `data.kp_job` the job folder, and one
prediction: the model's points as `keypointlabels` results in percent of the image (Label Studio's unit: 0 is the
left or top edge, 100 the right or bottom one; kp's pixel centres sit half a pixel in), scored by the frame's
outlier score so that Label Studio's "sort by prediction score" puts the worst frames first. The labelling config
is one KeyPointLabels (a Label per body part) on one Image.

The export (Label Studio: Export, JSON) is the list of tasks with their `annotations`; a task nobody submitted has none.

sleap-io's Label Studio writer (sleap_io.io.labelstudio) writes annotations, not scored predictions, and a rectangle
per instance that this config has no tag for, so the few keys are written here with the json module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from kp.errors import DataError

FROM, TO = "keypoints", "image"  # the config's tag names, which every result names
URL = "/data/local-files/?d="  # Label Studio's local-files storage


@dataclass
class Task:
    job: str  # the job folder (absolute), which kp refine merge finds again from the export
    index: str  # the frame's path in the job
    url: str  # where Label Studio reads the image
    size: tuple[int, int]  # width, height
    keypoints: np.ndarray  # K×2 pixels
    labelled: np.ndarray  # K bool
    score: float  # the frame's outlier score


def config(names: Sequence[str]) -> str:
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in names)
    return (
        f'<View>\n  <KeyPointLabels name="{FROM}" toName="{TO}" strokeWidth="2" smart="false">\n{labels}\n'
        f'  </KeyPointLabels>\n  <Image name="{TO}" value="$image" zoom="true"/>\n</View>\n'
    )


def write(tasks_path: Path, config_path: Path, tasks: Sequence[Task], names: Sequence[str]) -> None:
    config_path.write_text(config(names))
    tasks_path.write_text(json.dumps([_task(task, names) for task in tasks], indent=1))


def _task(task: Task, names: Sequence[str]) -> dict:
    width, height = task.size
    results = [
        {
            "id": f"{k}",
            "from_name": FROM,
            "to_name": TO,
            "type": "keypointlabels",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {
                "x": (float(x) + 0.5) / width * 100,
                "y": (float(y) + 0.5) / height * 100,
                "width": 0.5,
                "keypointlabels": [name],
            },
        }
        for k, (name, (x, y), ok) in enumerate(zip(names, task.keypoints, task.labelled))
        if ok
    ]
    return {
        "data": {"image": task.url, "kp_job": task.job, "kp_image": task.index},
        "predictions": [{"model_version": "kp", "score": round(float(task.score), 3), "result": results}],
    }


def job_of(path: Path) -> Path:
    """The job folder an export's tasks came from (DataError for a file that is no export of kp refine's tasks)."""
    return Path(_tasks(path)[0]["data"]["kp_job"])


def _tasks(path: Path) -> list[dict]:
    try:
        tasks = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable Label Studio JSON export ({error})") from None
    if (
        not isinstance(tasks, list)
        or not tasks
        or not all(isinstance(t, dict) and {"kp_job", "kp_image"} <= set(t.get("data", {})) for t in tasks)
    ):
        raise DataError(f"{path}: not a Label Studio export of kp refine's tasks (each task's data names kp_image)")
    return tasks


def read_export(path: Path, names: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """kp_image -> (K×2 pixels, K labelled) of each task's latest submitted annotation, None where nobody submitted
    one. DataError (one line, naming the file) for a file that is no export of a kp refine job's tasks, or one
    labelled with another config (other tags or labels)."""
    found = {}
    for task in _tasks(path):
        index = task["data"]["kp_image"]
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        found[index] = _points(done[-1].get("result", []), names, f"{path}: {index}") if done else None
    return found


def _points(results: list[dict], names: Sequence[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    keypoints, labelled = np.zeros((len(names), 2), np.float32), np.zeros(len(names), bool)
    for result in results:
        if result.get("type") != "keypointlabels":
            continue
        value, label = result.get("value", {}), (result.get("value", {}).get("keypointlabels") or [None])[0]
        if result.get("from_name") != FROM or result.get("to_name") != TO or label not in names:
            raise DataError(
                f"{where}: labelled with another labelling config ({result.get('from_name')} -> "
                f"{result.get('to_name')}, label {label!r}); this job's config has {FROM} -> {TO} with labels "
                f"{list(names)}: import the job's labelstudio/config.xml"
            )
        k = names.index(label)
        width, height = result["original_width"], result["original_height"]
        keypoints[k] = value["x"] / 100 * width - 0.5, value["y"] / 100 * height - 0.5
        labelled[k] = True
    return keypoints, labelled
