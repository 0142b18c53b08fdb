"""A plain CNN: conv + ReLU + max-pool stages, the 68-landmark seed's network (its regression head is in net.py)."""

from torch import nn


class SimpleCNN(nn.Module):
    dense = False  # coarse features: direct coordinate regression, or heatmaps through a deconvolution head

    def __init__(self, in_channels: int, channels=(16, 32, 64, 128), kernel_sizes=(7, 5, 3, 3)):
        super().__init__()
        if len(channels) != len(kernel_sizes):
            raise ValueError(f"channels {list(channels)} and kernel_sizes {list(kernel_sizes)} differ in length")
        layers, previous = [], in_channels
        for width, kernel in zip(channels, kernel_sizes):
            layers += [nn.Conv2d(previous, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.out_channels, self.out_stride = previous, 2 ** len(channels)

    def forward(self, x):
        return self.features(x)
