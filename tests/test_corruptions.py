"""Image corruptions and their severity tables (study/components/corruptions.py)."""

import pytest
import torch

from study.components.corruptions import CORRUPTIONS, corrupt, corruption_param
from study.errors import ConfigError

SEVERITIES = range(1, 6)


def images(n: int = 64, channels: int = 1, size: int = 28, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("shape", [(1, 28), (3, 32)])
def test_corruption_is_deterministic_and_keeps_shape_and_dtype(name, shape):
    x = images(16, *shape)
    for sev in SEVERITIES:
        a = corrupt(x, name, sev, gen(7))
        b = corrupt(x, name, sev, gen(7))
        assert a.dtype == torch.uint8 and a.shape == x.shape
        assert torch.equal(a, b)
        assert not torch.equal(a, x)
    assert torch.equal(x, images(16, *shape)), "the input is not modified in place"


def test_noise_differs_between_seeds_and_needs_a_generator():
    x = images(8)
    assert not torch.equal(
        corrupt(x, "gaussian_noise", 3, gen(0)), corrupt(x, "gaussian_noise", 3, gen(1))
    )
    with pytest.raises(ValueError, match="Generator"):
        corrupt(x, "gaussian_noise", 3)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_zero_is_the_identity(name):
    x = images(8, 3, 32)
    assert torch.equal(corrupt(x, name, 0, gen()), x)


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("shape", [(1, 28), (3, 32)])
def test_strength_grows_with_severity(name, shape):
    x = images(64, *shape)
    d = [mad(corrupt(x, name, s, gen(s)), x) for s in SEVERITIES]
    assert d[0] > 0
    assert all(lo < hi for lo, hi in zip(d, d[1:], strict=False)), d


def test_fractional_severity_interpolates_the_tables():
    assert corruption_param("contrast", 0) == 1.0
    assert corruption_param("contrast", 5) == 0.15
    assert corruption_param("blur", 2.5) == pytest.approx(1.25)
    assert corruption_param("gaussian_noise", 0.5) == pytest.approx(0.04)
    with pytest.raises(ValueError, match="severity"):
        corruption_param("blur", 6)
    with pytest.raises(ValueError, match="unknown corruption"):
        corruption_param("fog", 1)


def test_pointwise_corruptions_have_their_defined_values():
    x = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    x[..., :2] = 200  # half 200, half 0: image mean 100
    # contrast 0.15 at severity 5: 100 ± 100 · 0.15
    out = corrupt(x, "contrast", 5)
    assert set(out.unique().tolist()) == {85, 115}
    # brightness +0.3 · 255 = 76.5 at severity 5, clipped at 255, rounded half to even
    out = corrupt(x, "brightness", 5)
    assert set(out.unique().tolist()) == {76, 255}
    # a constant image stays constant under blur and pixelation (reflect padding, true averages)
    flat = torch.full((2, 3, 28, 28), 77, dtype=torch.uint8)
    for name in ("blur", "pixelate", "contrast"):
        assert torch.equal(corrupt(flat, name, 5), flat), name


def test_gaussian_noise_has_the_table_std():
    x = torch.full((32, 1, 28, 28), 128, dtype=torch.uint8)
    out = corrupt(x, "gaussian_noise", 1, gen())
    assert (out.float() - 128).std().item() == pytest.approx(0.08 * 255, rel=0.03)


@pytest.mark.parametrize("size", [28, 32])
def test_pixelate_makes_blocks_of_the_table_size(size):
    x = images(4, 1, size)
    for sev in SEVERITIES:
        b = int(CORRUPTIONS.get("pixelate").severities[sev])
        out = corrupt(x, "pixelate", sev)
        # every pixel equals the top-left pixel of its b×b block (anchored at the corner)
        corners = out[..., ::b, ::b].repeat_interleave(b, -2).repeat_interleave(b, -1)
        assert torch.equal(out, corners[..., :size, :size]), b
        # and the block holds the average of its pixels
        first = x[..., :b, :b].float().mean(dim=(-2, -1))
        assert torch.allclose(out[..., 0, 0].float(), first, atol=0.5)


def test_unknown_corruption_is_one_line_listing_the_valid_names():
    with pytest.raises(ConfigError) as error:
        corrupt(images(2), "fog", 1)
    assert str(error.value) == (
        "shift.corruptions='fog' is an unknown corruption; "
        "use one of blur, brightness, contrast, gaussian_noise, pixelate"
    )
