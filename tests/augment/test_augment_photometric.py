"""Batched device ops against torchvision's functional ops applied sample by sample."""

import pytest
import torch
import torchvision.transforms.functional as F
from augment_fixtures import DEVICES, params_batch, uint8_batch

from pipeline.base import photometric as P
from pipeline.base.augment_image import CLIP_MEAN, CLIP_STD, MoCoConfig

TOL = 1.0 / 255
TV_JITTER = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)


def _unit(batch: int = 6, seed: int = 0) -> torch.Tensor:
    return uint8_batch(batch, seed=seed).float() / 255


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.cpu() - b.cpu()).abs().max().item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", range(4), ids=P.JITTER_OPS)
def test_each_jitter_op_matches_torchvision(device, op):
    x = _unit()
    factors = params_batch()[:, 1:5]
    batched = getattr(P, "adjust_" + P.JITTER_OPS[op])(x.to(device), factors[:, op].to(device))
    expected = torch.stack([TV_JITTER[op](x[i], float(factors[i, op])) for i in range(len(x))])
    assert _max_diff(batched, expected) <= TOL
    assert _max_diff(batched, x) > 5 * TOL  # the op really changed the images


def _tv_jitter(image: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    for op in row[5:9].long().tolist():
        image = TV_JITTER[op](image, float(row[1 + op]))
    return image


@pytest.mark.parametrize("device", DEVICES)
def test_combined_ordered_jitter_matches_torchvision(device):
    batch = 24  # covers many of the 24 orders, hue at every position
    x = _unit(batch)
    params = params_batch(batch, seed=3)
    params[::5, 0] = 0.0  # some samples without jitter
    params[1::5, 0] = params[2::5, 0] = params[3::5, 0] = params[4::5, 0] = 1.0
    assert set(params[:, 5:9].argmax(1).tolist()) >= {0, 1, 2, 3}
    out = P.color_jitter(
        x.to(device), params[:, 1:5].to(device), params[:, 5:9].to(device), params[:, 0].bool().to(device)
    )
    for i in range(batch):
        expected = _tv_jitter(x[i], params[i]) if params[i, 0] else x[i]
        assert _max_diff(out[i], expected) <= TOL, f"sample {i}, order {params[i, 5:9].tolist()}"
    assert _max_diff(out[::5], x[::5]) <= 1e-5  # not applied: unchanged


@pytest.mark.parametrize("device", DEVICES)
def test_random_grayscale_matches_torchvision(device):
    x = _unit()
    flags = torch.tensor([True, False, True, True, False, False])
    out = P.random_grayscale(x.to(device), flags.to(device))
    for i in range(len(x)):
        expected = F.rgb_to_grayscale(x[i], num_output_channels=3) if flags[i] else x[i]
        assert _max_diff(out[i], expected) <= TOL
    assert _max_diff(out[1], x[1]) == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_blur_matches_torchvision_gaussian_blur(device):
    x = _unit()
    sigma = torch.tensor([0.1, 0.45, 0.9, 1.3, 1.75, 2.0])
    flags = torch.tensor([True, True, True, True, True, False])
    out = P.gaussian_blur(x.to(device), sigma.to(device), flags.to(device), max_sigma=2.0)
    inner = (slice(None), slice(7, -7), slice(7, -7))
    for i in range(len(x)):
        if not flags[i]:
            assert _max_diff(out[i], x[i]) == 0.0
            continue
        size = P.blur_kernel_size(float(sigma[i]))
        expected = F.gaussian_blur(x[i], [size, size], [float(sigma[i])] * 2)
        assert _max_diff(out[i][inner], expected[inner]) <= 2.0 / 255
        edge_tol = 1e-4 if device == "cpu" else TOL  # cuDNN may convolve in TF32
        assert _max_diff(out[i], expected) <= edge_tol  # same reflect padding: borders agree
    assert _max_diff(out[4], x[4]) > 10 * TOL


def test_blur_kernel_size_follows_sigma():
    assert [P.blur_kernel_size(s) for s in (0.1, 0.5, 1.0, 1.5, 2.0)] == [3, 5, 7, 11, 13]
    kernels = P.gaussian_kernels(torch.tensor([0.5, 2.0]), radius=6)
    assert kernels.shape == (2, 13)
    assert torch.allclose(kernels.sum(1), torch.ones(2, dtype=kernels.dtype))
    assert (kernels[0].abs() > 0).sum() == 5 and (kernels[1] > 0).sum() == 13


def _tv_photometric(image: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """The reference photometric order with torchvision's tensor ops, one sample."""
    if row[0]:
        image = _tv_jitter(image, row)
    if row[9]:
        image = F.rgb_to_grayscale(image, num_output_channels=3)
    if row[10]:
        size = P.blur_kernel_size(float(row[11]))
        image = F.gaussian_blur(image, [size, size], [float(row[11])] * 2)
    return F.normalize(image, CLIP_MEAN, CLIP_STD)


@pytest.mark.parametrize("device", DEVICES)
def test_apply_photometric_matches_per_sample_torchvision(device):
    batch = 16
    images = uint8_batch(batch, seed=5)
    g = torch.Generator().manual_seed(1)
    params = params_batch(batch, seed=7)
    for name in ("jitter", "grayscale", "blur"):
        params[:, P.PARAM_INDEX[name]] = (torch.rand(batch, generator=g) < 0.6).float()
    out = P.apply_photometric(images.to(device), params.to(device), MoCoConfig())
    assert out.dtype == torch.float32 and out.shape == images.shape
    assert out.device.type == device
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    for i in range(batch):
        expected = _tv_photometric(images[i].float() / 255, params[i])
        assert _max_diff(out[i].cpu() * std, expected * std) <= TOL, f"sample {i}"


def test_flip_commutes_with_the_photometric_part():
    images = uint8_batch(8, seed=2)
    params = params_batch(8, seed=4, jitter=1.0, blur=1.0)
    params[::2, 9] = 1.0
    flipped = P.apply_photometric(images.flip(-1), params)
    assert _max_diff(flipped, P.apply_photometric(images, params).flip(-1)) <= 1e-4


def test_apply_photometric_rejects_bad_inputs():
    images = uint8_batch(2)
    with pytest.raises(ValueError, match="params must be"):
        P.apply_photometric(images, torch.zeros(3, P.NUM_PARAMS))
    with pytest.raises(TypeError, match="uint8"):
        P.apply_photometric(images.float(), params_batch(2))
