"""kp refine's contact sheet: the picked frames in a grid, each with its predictions and a caption saying which frame
it is and why it was picked. Drawn with OpenCV, like the prediction overlays, at the frames' own pixels."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from kp.data.base import KeypointMeta
from kp.viz.overlay import draw

TILE = 320  # px: the width of a frame in the contact sheet


def contact_sheet(picks: list, meta: KeypointMeta, threshold: float, path: Path, columns: int = 5) -> None:
    """The picked frames with their predictions (no radius circles: at this size they hide the frame), each captioned
    with its video, frame and why it was picked."""
    tiles = []
    for number, p in enumerate(picks, 1):
        picture = draw(p.image, p.keypoints[None], p.scores[None], meta, threshold)
        height = round(picture.shape[0] * TILE / picture.shape[1])
        picture = cv2.resize(picture, (TILE, height), interpolation=cv2.INTER_AREA)
        band = np.full((40, TILE, 3), 255, np.uint8)
        cv2.putText(band, f"{number}. {p.video.stem} #{p.frame}", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        cv2.putText(band, p.reason, (6, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (160, 0, 0), 1)
        tiles.append(np.vstack([band, picture]))
    if not tiles:
        return
    height = max(tile.shape[0] for tile in tiles)
    tiles = [np.pad(tile, ((0, height - tile.shape[0]), (0, 0), (0, 0)), constant_values=255) for tile in tiles]
    columns = min(columns, len(tiles))
    tiles += [np.full_like(tiles[0], 255)] * (math.ceil(len(tiles) / columns) * columns - len(tiles))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
