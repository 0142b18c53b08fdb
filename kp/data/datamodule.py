"""One LightningDataModule for every dataset: it builds the three splits and their DataLoaders, and refuses data
that would train or test on a wrong reading of it (an empty split, a split with no labelled keypoint, the same image
in two splits); mirror augmentation is switched off where the left/right pairs are unknown."""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader

from kp.data import io
from kp.data.base import KeypointDataset, KeypointMeta, Subset
from kp.data.keypoint_pairs import mirror_note
from kp.data.splits import SPLITS, nested_subset, write_recorded
from kp.data.transforms import KeypointAugment
from kp.data.unlabelled import ClipDataset, cache_clips, find_videos
from kp.errors import ConfigError, DataError

log = logging.getLogger(__name__)


class KeypointDataModule(L.LightningDataModule):
    def __init__(
        self,
        dataset: Callable[..., KeypointDataset],
        transforms: Mapping[str, Callable | None] | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        allow_leaks: bool = False,
        max_image_megapixels: float = 100,
        train_fraction: float = 1.0,
        unlabelled: Mapping | None = None,
    ):
        """`dataset` is called as dataset(split=..., transform=..., max_pixels=...) for each of train/val/test (a
        Hydra partial); `transforms` maps a split name to its augmentation pipeline (None: no augmentation).
        allow_leaks: the same image (same bytes) in two splits is a warning instead of an error.
        max_image_megapixels: the datasets refuse larger images before decoding (their max_pixels). train_fraction:
        train on this share of the training split only, in whole groups (people, videos), nested (the 25 % subset
        lies inside the 50 % one): learning curves."""
        super().__init__()
        self.allow_leaks = allow_leaks
        self.max_pixels = int(max_image_megapixels * 1e6)  # given to each split's dataset
        self.dataset = dataset
        self.transforms = dict(transforms or {})
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        if not 0 < train_fraction <= 1:
            raise ValueError(f"data.train_fraction must be in (0, 1], got {train_fraction}")
        self.train_fraction = train_fraction
        self.unlabelled = dict(unlabelled) if unlabelled else None
        self._clips: ClipDataset | None = None
        self.splits: dict[str, KeypointDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # train.py sets up early to read the metadata; Lightning calls setup again
            return
        for split in SPLITS:
            try:
                data = self.dataset(split=split, transform=self.transforms.get(split), max_pixels=self.max_pixels)
            except DataError:  # a ValueError too, and already names its file
                raise
            except ValueError as error:  # a dataset's refusal of its options (data.dataset.*): one line, no traceback
                raise DataError(f"data.dataset: {error}") from error
            if split == "train" and self.train_fraction < 1:
                data = self._train_fraction_of(data)
            source = data.source or type(data).__name__
            if len(data) == 0:
                raise DataError(
                    f"{source}: the {split} split is empty{_skipped(data)}: check the data path and the split settings"
                )
            labelled = data.labelled()
            if labelled is not None and not labelled.any():
                raise DataError(
                    f"{source}: no keypoint of the {split} split is labelled ({len(data)} samples){_skipped(data)}, "
                    "so its metrics would be NaN: check the label columns and visibility flags"
                )
            self.splits[split] = data
        self._check_hflip()
        self._check_duplicates()
        if self.issues:
            log.warning(
                "%d bad sample(s) or point(s) left out in all (data_issues.csv lists them: file, row, reason)",
                len(self.issues),
            )

    @property
    def issues(self) -> list[str]:
        """Every sample skipped while reading the data (`file:line: reason`), once."""
        return list(dict.fromkeys(reason for data in self.splits.values() for reason in data.issues))

    def write_issues(self, path: Path) -> None:
        """data_issues.csv: file, row, reason per skipped sample (a header only when nothing was skipped)."""
        with open(path, "w", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(["file", "row", "reason"])
            writer.writerows(io.split_location(reason) for reason in self.issues)

    def _train_fraction_of(self, train: KeypointDataset) -> Subset:
        """The nested share of the training split; the checks of setup() then apply to it (a share with no labelled
        keypoint is refused like a split with none)."""
        groups = train.groups() or [str(i) for i in range(len(train))]
        kept = nested_subset(groups, self.train_fraction)
        log.info(
            "data.train_fraction=%g: training on %d of %d images (%d of %d groups)",
            self.train_fraction,
            len(kept),
            len(train),
            len({groups[i] for i in kept}),
            len(set(groups)),
        )
        return Subset(train, kept)

    def _check_hflip(self) -> None:
        """One log line on mirroring (kp.data.keypoint_pairs.mirror_note); where the left/right pairs are unknown, the
        reflections leave every split's augmentation (the module leaves flip test off likewise)."""
        train = self.splits["train"]
        meta = train.meta
        note = f"{train.source or type(train).__name__}: {mirror_note(meta.names, meta.flip_pairs)}"
        if meta.flip_pairs is not None:
            log.info(note)
            return
        log.warning(note)
        for data in self.splits.values():
            if isinstance(data.transform, KeypointAugment):
                data.transform = data.transform.without_mirrors()

    def _check_duplicates(self) -> None:
        """Every sample in one split only: the same image file (by path) or the same image bytes (by content) in two
        splits is an error (a leak that flatters the validation and test metrics) unless allow_leaks; under two names
        within a split, a warning. A split that is another one by design (facial's test = val) is left out."""
        where: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))  # file or bytes -> split -> names
        for split, data in self.splits.items():
            if data.repeats in self.splits:
                log.warning(
                    "%s: the %s split is the %s split by the dataset's settings (facial: test_fraction=0), so its "
                    "figures are %s figures",
                    data.source or type(data).__name__,
                    split,
                    data.repeats,
                    data.repeats,
                )
                continue
            for name, source in data.image_sources() or []:
                where[f"bytes {io.digest(source)}"][split].add(name)
                if isinstance(source, Path):
                    where[f"file {source.resolve()}"][split].add(name)
        within = [
            names
            for key, splits in where.items()
            if key.startswith("bytes")
            for names in splits.values()
            if len(names) > 1
        ]
        if within:
            log.warning(
                "%d image(s) appear more than once within a split under other names: %s",
                len(within),
                "; ".join(" = ".join(sorted(names)) for names in within[:5]),
            )
        across = {
            " = ".join(f"{split}:{name}" for split, names in splits.items() for name in sorted(names)): splits
            for splits in where.values()
            if len(splits) > 1
        }
        if across:
            first, splits = next(iter(across.items()))
            source = self.splits["train"].source or type(self.splits["train"]).__name__
            message = (
                f"{source}: {len(across)} image(s) appear in more than one split (same file or same bytes); the "
                f"first is in both {' and '.join(splits)}: {first}"
            )
            if not self.allow_leaks:
                raise DataError(f"{message}. Remove the copies, or set data.allow_leaks=true to train anyway")
            log.warning(message)

    def write_splits(self, path: Path) -> None:
        """splits.csv in the run directory: split, sample for every sample (kp.data.splits.write_recorded), which a
        retrain on a project that grew reads back (data.dataset.splits_from) to keep every frame on its side."""
        write_recorded(
            path,
            {
                split: [name for name, _ in data.image_sources() or []]
                for split, data in self.splits.items()
                if data.repeats not in self.splits
            },
        )

    @property
    def meta(self) -> KeypointMeta:
        self.setup()
        return self.splits["train"].meta

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images the model sees, read off the first training sample."""
        self.setup()
        return tuple(self.splits["train"][0]["image"].shape)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            drop_last=shuffle and len(self.splits[split]) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        """The labelled batches; once `unlabelled_clips()` has made the clips (kp.build does, for a loss with terms
        that need no labels), a CombinedLoader of {"labelled": batch, "unlabelled": clips B×T×C×H×W}: one clip batch
        per labelled batch, the labelled loader setting the epoch's length."""
        labelled = self._loader("train", shuffle=True)
        if self._clips is None:
            return labelled
        per_step = self.unlabelled.get("clips_per_step", 1)
        self._clips.length = max(len(self._clips.starts), len(labelled) * per_step)  # an epoch's worth at least
        # Shuffled with the seeded torch generator; under DDP, Lightning's distributed sampler gives each rank its own.
        clips = DataLoader(self._clips, batch_size=per_step, shuffle=True, drop_last=True)
        return CombinedLoader({"labelled": labelled, "unlabelled": clips}, mode="min_size")

    def unlabelled_clips(self) -> ClipDataset:
        """The clips of data.unlabelled, the videos decoded once into the cache on the first call
        (kp.data.unlabelled); from then on the training loader carries them."""
        if self._clips is not None:
            return self._clips
        if not self.unlabelled or self.unlabelled.get("videos") is None:
            raise ConfigError(
                "the loss has terms that need unlabelled video (temporal, pose_pca, multiview_pca) and "
                "data.unlabelled.videos is not set: give a list of videos, a glob, or auto (the project's videos/), "
                "or train with loss=default"
            )
        options = dict(self.unlabelled)
        unknown = set(options) - {"videos", "clip_length", "clips_per_step", "frames"}
        if unknown:
            raise ConfigError(
                f"data.unlabelled: unknown option(s) {', '.join(sorted(unknown))}; "
                "expected videos, clip_length, clips_per_step, frames"
            )
        if options.get("clips_per_step", 1) < 1:
            raise ConfigError(f"data.unlabelled.clips_per_step={options['clips_per_step']}: expected 1 or more")
        self.setup()
        train = self.splits["train"]
        if train.fit_size is None:
            raise ConfigError(
                f"data.unlabelled: {type(train).__name__} does not letterbox its images into a fixed size (fit_size), "
                "so video frames cannot be sized as its images are: unlabelled video needs a dataset that does"
            )
        videos = options["videos"] if isinstance(options["videos"], str) else list(options["videos"])
        clip_length = options.get("clip_length", 8)
        frames, runs = cache_clips(
            find_videos(videos, getattr(self.dataset, "keywords", {}).get("project")),
            tuple(train.fit_size),
            self.input_shape[0],
            clip_length,
            options.get("frames", 1000),
        )
        self._clips = ClipDataset(frames, runs, clip_length)
        return self._clips

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def _skipped(data: KeypointDataset) -> str:
    """What the loader skipped, for the message of a split left empty or unlabelled by it: the first bad sample."""
    if not data.issues:
        return ""
    return f" ({len(data.issues)} bad sample(s) or point(s) left out, the first: {data.issues[0]})"
