"""The built-in dataset: procedural cartoon faces, generated on the fly from a seed (no files).

Each image shows one face (an ellipse with eyes, a nose and a mouth) under a random affine warp on a textured, noisy
background. Five keypoints: the eye centres, the nose tip and the mouth corners ("left" is the face's own left, which
appears on the image's right, as in the Kaggle and iBUG conventions). Some samples carry an occluding rectangle: the
keypoints under it are invisible; keypoints pushed out of the frame are invisible too. Small yellow dots are scattered
over the background, and their number is the `count` target, so every loss of the project has something to learn.

Sample `i` of split `s` is a pure function of (seed, s, i): the same config always yields the same images.
"""

from __future__ import annotations

import cv2
import numpy as np

from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from kp.data.io import MAX_PIXELS

NAMES = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
# Keypoints in the face's own frame: unit = face half-height, x to the image's right, y down.
TEMPLATE = np.array([[0.35, -0.25], [-0.35, -0.25], [0.0, 0.12], [0.32, 0.48], [-0.32, 0.48]], np.float32)
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
SUBPIXEL = 4  # cv2 drawing with shift=4: coordinates in 1/16 pixel, so features sit where the keypoints say


def _px(points: np.ndarray) -> np.ndarray:
    return np.round(points * (1 << SUBPIXEL)).astype(np.int32)


class SyntheticKeypoints(KeypointDataset):
    meta = KeypointMeta(
        names=NAMES,
        flip_pairs=[(0, 1), (3, 4)],
        skeleton=[(0, 1), (0, 2), (1, 2), (2, 3), (2, 4), (3, 4)],
        norm_pair=(0, 1),
        count_scale=None,  # set per instance from max_count
    )

    def __init__(
        self,
        split: str,
        sizes: dict[str, int] | None = None,
        image_size: int = 64,
        seed: int = 0,
        occlusion_prob: float = 0.3,
        max_count: int = 5,
        max_rotation: float = 30.0,
        transform=None,
        max_pixels: int = MAX_PIXELS,
    ):
        super().__init__(transform, max_pixels)
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {list(SPLIT_IDS)}, got {split!r}")
        sizes = sizes or {"train": 4096, "val": 256, "test": 256}
        self.split, self.length = split, int(sizes[split])
        self.image_size, self.seed = image_size, seed
        self.fit_size = (image_size, image_size)
        self.occlusion_prob, self.max_count, self.max_rotation = occlusion_prob, max_count, max_rotation
        self.meta = KeypointMeta(**{**vars(type(self).meta), "count_scale": float(max_count)})

    def __len__(self) -> int:
        return self.length

    def load(self, index: int) -> RawSample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index])
        size = self.image_size
        image = self._background(rng, size)

        # Random similarity warp plus a little shear: face frame -> image pixels.
        scale = rng.uniform(0.22, 0.4) * size
        angle = np.deg2rad(rng.uniform(-self.max_rotation, self.max_rotation))
        aspect = rng.uniform(0.85, 1.15)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
        linear = rotation @ np.diag([scale * aspect * 0.8, scale]).astype(np.float32)
        centre = rng.uniform(0.25, 0.75, size=2).astype(np.float32) * size

        def warp(points: np.ndarray) -> np.ndarray:
            return points @ linear.T + centre

        keypoints = warp(TEMPLATE)
        self._draw_face(image, rng, warp, keypoints, scale)

        visible = np.ones(len(NAMES), bool)
        if rng.random() < self.occlusion_prob:
            w, h = rng.uniform(0.15, 0.35, size=2) * size
            x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            colour = rng.uniform(0, 255, size=3)
            cv2.rectangle(
                image,
                _px(np.array([x0, y0])),
                _px(np.array([x0 + w, y0 + h])),
                colour.tolist(),
                -1,
                cv2.LINE_AA,
                SUBPIXEL,
            )
            # A keypoint within a pixel of the rectangle is half hidden: call it occluded rather than guess.
            covered = (
                (keypoints[:, 0] >= x0 - 1)
                & (keypoints[:, 0] <= x0 + w + 1)
                & (keypoints[:, 1] >= y0 - 1)
                & (keypoints[:, 1] <= y0 + h + 1)
            )
            visible &= ~covered

        count = self._draw_dots(image, rng, keypoints)
        noise = rng.normal(0, 6, size=image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        return RawSample(
            image=image,
            keypoints=keypoints,
            visible=visible,
            count=count / self.max_count,
            id=f"synthetic/{self.split}/{index}",
        )

    @staticmethod
    def _background(rng: np.random.Generator, size: int) -> np.ndarray:
        # Low-frequency colour texture: a random 4×4 grid upsampled smoothly, plus a random gradient.
        grid = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.float32)
        texture = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        ramp = np.linspace(-1, 1, size, dtype=np.float32)
        gradient = rng.uniform(-40, 40) * ramp[None, :, None] + rng.uniform(-40, 40) * ramp[:, None, None]
        return np.clip(texture + gradient, 0, 255).astype(np.float32)

    @staticmethod
    def _draw_face(image, rng, warp, keypoints, scale) -> None:
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        outline = warp(np.stack([np.cos(t), np.sin(t)], 1).astype(np.float32))
        skin = rng.uniform([120, 80, 60], [255, 220, 200])
        cv2.fillPoly(image, [_px(outline)], skin.tolist(), cv2.LINE_AA, SUBPIXEL)
        eye_radius = int(max(1.5, 0.09 * scale) * (1 << SUBPIXEL))
        for eye in keypoints[:2]:
            cv2.circle(image, _px(eye), int(eye_radius * 1.7), (255, 255, 255), -1, cv2.LINE_AA, SUBPIXEL)
            cv2.circle(image, _px(eye), eye_radius, (20, 20, 60), -1, cv2.LINE_AA, SUBPIXEL)
        nose = keypoints[2]
        nose_base = warp(np.array([[-0.1, 0.05], [0.1, 0.05]], np.float32))
        cv2.fillPoly(image, [_px(np.stack([nose, nose_base[0], nose_base[1]]))], (90, 40, 40), cv2.LINE_AA, SUBPIXEL)
        lip = warp(np.array([[0.0, 0.56]], np.float32))[0]
        mouth = np.stack([keypoints[4], lip, keypoints[3]])
        thickness = max(1, int(round(0.05 * scale)))
        cv2.polylines(image, [_px(mouth)], False, (150, 0, 30), thickness, cv2.LINE_AA, SUBPIXEL)

    def _draw_dots(self, image, rng, keypoints) -> int:
        count = int(rng.integers(0, self.max_count + 1))
        size = image.shape[0]
        placed = 0
        for _ in range(count * 20):  # rejection sampling: dots stay clear of the keypoints and of each other
            if placed == count:
                break
            point = rng.uniform(2, size - 2, size=2)
            if np.min(np.linalg.norm(keypoints - point, axis=1)) < 5:
                continue
            cv2.circle(image, _px(point), 2 << SUBPIXEL, (255, 230, 0), -1, cv2.LINE_AA, SUBPIXEL)
            placed += 1
        return placed
