"""One LightningDataModule for every dataset: it builds the three splits and their DataLoaders."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import lightning as L
from torch.utils.data import DataLoader

from kp.data.base import KeypointDataset, KeypointMeta

SPLITS = ("train", "val", "test")


class KeypointDataModule(L.LightningDataModule):
    def __init__(
        self,
        dataset: Callable[..., KeypointDataset],
        transforms: Mapping[str, Callable | None] | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ):
        """`dataset` is called as dataset(split=..., transform=...) for each of train/val/test (a Hydra partial);
        `transforms` maps a split name to its augmentation pipeline (None: no augmentation)."""
        super().__init__()
        self.dataset = dataset
        self.transforms = dict(transforms or {})
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.splits: dict[str, KeypointDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # train.py sets up early to read the metadata; Lightning calls setup again
            return
        for split in SPLITS:
            data = self.dataset(split=split, transform=self.transforms.get(split))
            if len(data) == 0:
                raise ValueError(f"The {split} split of {type(data).__name__} is empty: check the data path and split settings")
            self.splits[split] = data

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

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
