import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kp.codecs import CoordsCodec, HeatmapCodec, flip_test
from kp.data.base import KeypointMeta
from kp.errors import ConfigError

SIZE = 64


def _keypoints(draw, stride: int, margin: float, count: int = 3) -> torch.Tensor:
    """Keypoints at least `margin` heatmap pixels inside the heatmap (so a decoder can see both sides of the peak)."""
    low = (stride - 1) / 2 + margin * stride
    high = SIZE - 1 - low
    coords = draw(st.lists(st.floats(low, high, allow_nan=False), min_size=2 * count, max_size=2 * count))
    return torch.tensor(coords, dtype=torch.float32).view(1, count, 2)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), stride=st.sampled_from([1, 2, 4]), sigma=st.floats(1.0, 3.0))
def test_heatmap_round_trip_with_dark_is_subpixel(data, stride, sigma):
    codec = HeatmapCodec((SIZE, SIZE), stride=stride, sigma=sigma, decoder="dark")
    keypoints = _keypoints(data.draw, stride, margin=1.0)
    encoded = codec.encode(keypoints, torch.ones(1, 3, dtype=torch.bool))
    decoded, scores = codec.decode({"keypoints": encoded["keypoints"]})
    assert (decoded - keypoints).abs().max() < 0.1
    assert torch.all(scores > 0.5)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), stride=st.sampled_from([1, 2, 4]), sigma=st.floats(0.8, 1.5))
def test_heatmap_round_trip_with_windowed_average_is_subpixel(data, stride, sigma):
    # A window of 4σ around the peak holds the whole Gaussian, so its weighted mean is the centre.
    window = int(4 * sigma) + 1
    codec = HeatmapCodec((SIZE, SIZE), stride=stride, sigma=sigma, decoder="average", window=window)
    keypoints = _keypoints(data.draw, stride, margin=window)
    encoded = codec.encode(keypoints, torch.ones(1, 3, dtype=torch.bool))
    decoded, _ = codec.decode({"keypoints": encoded["keypoints"]})
    assert (decoded - keypoints).abs().max() < 0.1


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_heatmap_pixel_convention(stride):
    # Heatmap pixel (u, v) covers input pixels [u*s, u*s + s - 1]: its centre is u*s + (s-1)/2.
    codec = HeatmapCodec((SIZE, SIZE), stride=stride, sigma=1.0, decoder="argmax")
    u, v = 3, 5
    keypoint = torch.tensor([[[u * stride + (stride - 1) / 2, v * stride + (stride - 1) / 2]]])
    heatmap = codec.encode(keypoint, torch.ones(1, 1, dtype=torch.bool))["keypoints"][0, 0]
    assert heatmap.shape == (SIZE // stride, SIZE // stride)
    assert heatmap[v, u] == pytest.approx(1.0)
    assert heatmap[v, u + 1] == pytest.approx(torch.exp(torch.tensor(-0.5)).item(), rel=1e-5)
    decoded, _ = codec.decode({"keypoints": heatmap[None, None]})
    assert decoded[0, 0].tolist() == pytest.approx(keypoint[0, 0].tolist())


@pytest.mark.parametrize("decoder, tolerance", [("argmax", 0.5), ("quarter", 0.25 + 1e-6)])
def test_coarse_decoders_err_within_their_bound(decoder, tolerance):
    codec = HeatmapCodec((SIZE, SIZE), stride=1, sigma=2.0, decoder=decoder)
    keypoints = torch.rand(8, 4, 2) * 40 + 12
    decoded, _ = codec.decode(codec.encode(keypoints, torch.ones(8, 4, dtype=torch.bool)))
    assert (decoded - keypoints).abs().max() <= tolerance


def test_invisible_keypoints_get_zero_weight_and_an_empty_heatmap():
    codec = HeatmapCodec((SIZE, SIZE), stride=2, sigma=2.0)
    keypoints = torch.full((2, 3, 2), 20.0)
    visible = torch.tensor([[True, False, True], [False, False, True]])
    encoded = codec.encode(keypoints, visible)
    assert encoded["keypoint_weights"].tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    assert encoded["keypoints"][~visible].abs().sum() == 0
    assert torch.all(encoded["keypoints"][visible].amax((-2, -1)) > 0.9)


def test_heatmap_codec_rejects_a_stride_that_does_not_divide_the_input():
    with pytest.raises(ValueError, match="stride 3"):
        HeatmapCodec((64, 64), stride=3)


@settings(max_examples=50, deadline=None)
@given(x=st.floats(-0.5, 47.5), y=st.floats(-0.5, 63.5))
def test_coords_round_trip(x, y):
    codec = CoordsCodec((64, 48))  # height 64, width 48
    keypoints = torch.tensor([[[x, y]]])
    encoded = codec.encode(keypoints, torch.ones(1, 1, dtype=torch.bool))
    assert encoded["keypoints"].abs().max() <= 1.0 + 1e-6
    decoded, scores = codec.decode(encoded)
    assert (decoded - keypoints).abs().max() < 1e-4
    assert scores.tolist() == [[1.0]]


def test_coords_convention_maps_image_edges_to_minus_and_plus_one():
    codec = CoordsCodec((64, 48))
    corners = torch.tensor([[[-0.5, -0.5], [47.5, 63.5], [23.5, 31.5]]])
    encoded = codec.encode(corners, torch.tensor([[True, True, False]]))
    assert encoded["keypoints"][0].tolist() == [[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]
    assert encoded["keypoint_weights"].tolist() == [[1.0, 1.0, 0.0]]


def _mirror(keypoints: torch.Tensor, permutation: list[int]) -> torch.Tensor:
    """Where a perfect model puts the keypoints of the mirror image: x -> W - 1 - x, left and right swapped."""
    mirrored = keypoints.clone()
    mirrored[..., 0] = SIZE - 1 - mirrored[..., 0]
    return mirrored[:, permutation]


@settings(max_examples=30, deadline=None)
@given(data=st.data(), stride=st.sampled_from([1, 2, 4]))
def test_flip_test_of_a_perfect_model_finds_the_keypoints_at_every_stride(data, stride):
    """The mirror's heatmaps, flipped back, must line up with the image's to the sub-pixel: averaged, they decode to
    the same keypoints, and the two agree (score ≈ the peak)."""
    codec = HeatmapCodec((SIZE, SIZE), stride=stride, sigma=1.5, decoder="dark")
    keypoints, permutation = _keypoints(data.draw, stride, margin=1.0), [1, 0, 2]
    visible = torch.ones(1, 3, dtype=torch.bool)
    outputs = {"keypoints": codec.encode(keypoints, visible)["keypoints"]}
    mirrored = {"keypoints": codec.encode(_mirror(keypoints, permutation), visible)["keypoints"]}
    decoded, scores, disagreement = flip_test(codec, outputs, mirrored, permutation)
    assert (decoded - keypoints).abs().max() < 0.1
    assert torch.all(scores > 0.5) and torch.all(disagreement < 0.1)


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_flip_test_on_a_symmetric_image_keeps_the_peak(stride):
    """A left-right symmetric image gives the same maps as its mirror: the averaged peak is where the single one is."""
    codec = HeatmapCodec((SIZE, SIZE), stride=stride, sigma=1.5, decoder="dark")
    on_axis = torch.tensor([[[(SIZE - 1) / 2, 20.0], [(SIZE - 1) / 2, 40.0]]])
    outputs = {"keypoints": codec.encode(on_axis, torch.ones(1, 2, dtype=torch.bool))["keypoints"]}
    single, _ = codec.decode(outputs)
    averaged, _, _ = flip_test(codec, outputs, outputs, [0, 1])
    assert (averaged - single).abs().max() < 1e-4


def test_flip_test_with_coordinates_and_heads():
    codec = CoordsCodec((SIZE, SIZE))
    keypoints, permutation = torch.tensor([[[10.0, 20.0], [50.0, 21.0], [31.5, 40.0]]]), [1, 0, 2]
    visible = torch.ones(1, 3, dtype=torch.bool)
    outputs = {
        "keypoints": codec.encode(keypoints, visible)["keypoints"],
        "visibility": torch.tensor([[2.0, -1.0, 0.0]]),
    }
    mirrored = {
        "keypoints": codec.encode(_mirror(keypoints, permutation), visible)["keypoints"],
        "visibility": torch.tensor([[-1.0, 2.0, 0.0]]),
    }
    decoded, scores, _ = flip_test(codec, outputs, mirrored, permutation)
    assert torch.allclose(decoded, keypoints, atol=1e-4)
    assert torch.allclose(scores, torch.sigmoid(torch.tensor([[2.0, -1.0, 0.0]])), atol=1e-5)
    # A disagreement of τ = 2 % of the input lowers the score by exp(-1/2).
    shifted = {
        **mirrored,
        "keypoints": codec.encode(_mirror(keypoints + torch.tensor([0.02 * SIZE, 0.0]), permutation), visible)[
            "keypoints"
        ],
    }
    _, lowered, disagreement = flip_test(codec, outputs, shifted, permutation)
    assert torch.allclose(lowered / scores, torch.full_like(scores, float(torch.exp(torch.tensor(-0.5)))), atol=1e-4)
    assert torch.allclose(disagreement, torch.full_like(scores, 0.02 * SIZE), atol=1e-4)  # in input pixels


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_heatmap_spread_is_small_for_a_sharp_peak_and_large_for_two(stride):
    """One factor of the difficulty behind the uncertainty radius: in input pixels, so the same Gaussian gives the same
    spread at
    every stride; a second blob of the same height far away makes it much larger."""
    sigma_px = 4.0
    codec = HeatmapCodec((SIZE, SIZE), stride=stride, sigma=sigma_px / stride)
    one = codec.encode(torch.tensor([[[20.0, 30.0]]]), torch.ones(1, 1, dtype=torch.bool))["keypoints"]
    two = torch.maximum(
        one, codec.encode(torch.tensor([[[44.0, 30.0]]]), torch.ones(1, 1, dtype=torch.bool))["keypoints"]
    )
    sharp, double = codec.spread({"keypoints": one}), codec.spread({"keypoints": two})
    # a 2-D Gaussian weighted by itself above 10 % of its peak: r²/2σ² is Exp(1) cut at c = ln 10, so the RMS radius
    # is σ·sqrt(2·(1 - (1 + c)/10) / 0.9) ≈ 1.22 σ (the pixel grid adds a little)
    assert sharp.item() == pytest.approx(1.22 * sigma_px, rel=0.1)
    assert double.item() > 2.5 * sharp.item()
    assert CoordsCodec((SIZE, SIZE)).spread({"keypoints": torch.zeros(2, 3, 2)}).tolist() == [[1.0] * 3] * 2


def test_mirroring_needs_known_flip_pairs():
    unknown = KeypointMeta(names=["a", "b"], flip_pairs=None)
    with pytest.raises(ConfigError, match="flip_pairs=\\[\\[left_x, right_x\\], ...\\], or \\[\\]"):
        unknown.flip_permutation()
    assert KeypointMeta(names=["a", "b"], flip_pairs=[]).flip_permutation() == [0, 1]
