"""Overlays and summary figures: exact blend values, scaling rules, error messages."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from tf_gradcam.render import overlay, overlay_batch, plot
from tf_gradcam.render.overlay import colorize, to_display_rgb


def _ramp(h: int = 8, w: int = 10) -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))


@pytest.fixture()
def rgb_uint8() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)


def test_alpha_zero_returns_the_image(rgb_uint8: np.ndarray) -> None:
    out = overlay(rgb_uint8, _ramp(), alpha=0.0)
    assert out.dtype == np.uint8 and out.shape == (8, 10, 3)
    np.testing.assert_array_equal(out, rgb_uint8)


def test_alpha_one_returns_colormap_colours(rgb_uint8: np.ndarray) -> None:
    heat = _ramp()
    out = overlay(rgb_uint8, heat, alpha=1.0, colormap="viridis")
    expected = colormaps["viridis"](heat, bytes=True)[..., :3]
    np.testing.assert_array_equal(out, expected)
    # Heat 0 and heat 1 are the colormap's two ends.
    np.testing.assert_array_equal(out[0, 0], colormaps["viridis"](0.0, bytes=True)[:3])
    np.testing.assert_array_equal(out[0, -1], colormaps["viridis"](1.0, bytes=True)[:3])


def test_blend_is_convex(rgb_uint8: np.ndarray) -> None:
    heat = _ramp()
    colours = colormaps["jet"](heat, bytes=True)[..., :3].astype(np.float64)
    out = overlay(rgb_uint8, heat, alpha=0.25)
    expected = 0.75 * rgb_uint8 + 0.25 * colours
    assert np.abs(out.astype(np.float64) - expected).max() <= 0.5 + 1e-6


def test_float_image_in_unit_range_scaled_by_255() -> None:
    img = np.full((4, 4, 3), 0.5, dtype=np.float32)
    np.testing.assert_array_equal(
        overlay(img, np.zeros((4, 4)), alpha=0.0), np.full((4, 4, 3), 128)
    )
    # Same picture as the uint8 version.
    as_uint8 = np.full((4, 4, 3), 128, dtype=np.uint8)
    np.testing.assert_array_equal(
        overlay(img, _ramp(4, 4), alpha=0.4), overlay(as_uint8, _ramp(4, 4), alpha=0.4)
    )


def test_float_image_above_one_read_as_0_255() -> None:
    img = np.full((3, 3, 3), 200.0, dtype=np.float64)
    img[0, 0] = 7.0
    out = to_display_rgb(img)
    assert out[1, 1, 0] == 200 and out[0, 0, 0] == 7


def test_negative_float_image_min_max_rescaled() -> None:
    # e.g. a mean-centred preprocessed image in [-1, 1]
    img = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(2, 2, 3)
    out = to_display_rgb(img)
    assert out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out.reshape(-1).astype(int)) >= 0), "order of values is kept"


def test_grey_images_become_rgb() -> None:
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    for img in (grey, grey[..., None]):
        out = overlay(img, np.zeros((4, 4)), alpha=0.0)
        assert out.shape == (4, 4, 3)
        np.testing.assert_array_equal(out[..., 0], grey)
        np.testing.assert_array_equal(out[..., 2], grey)


def test_small_heatmap_resized_bilinearly(rgb_uint8: np.ndarray) -> None:
    small = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    out = overlay(np.zeros((8, 8, 3), np.uint8), small, alpha=1.0, colormap="gray")
    assert out.shape == (8, 8, 3)
    # Left edge cold, right edge hot, a smooth ramp in between.
    assert out[:, 0].max() == 0 and out[:, -1].min() == 255
    row = out[3, :, 0].astype(int)
    assert np.all(np.diff(row) >= 0) and len(np.unique(row)) >= 4


def test_colormap_choice_changes_output(rgb_uint8: np.ndarray) -> None:
    heat = _ramp()
    jet = overlay(rgb_uint8, heat, colormap="jet")
    inferno = overlay(rgb_uint8, heat, colormap="inferno")
    assert np.abs(jet.astype(int) - inferno.astype(int)).mean() > 5


def test_colormap_object_accepted() -> None:
    red = ListedColormap([[1.0, 0.0, 0.0]])
    out = overlay(np.zeros((2, 2, 3), np.uint8), np.ones((2, 2)), colormap=red, alpha=1.0)
    np.testing.assert_array_equal(out, np.tile([255, 0, 0], (2, 2, 1)))


def test_unknown_colormap() -> None:
    with pytest.raises(ValueError, match="unknown colormap 'not_a_cmap'"):
        overlay(np.zeros((2, 2, 3)), np.zeros((2, 2)), colormap="not_a_cmap")


def test_nan_heatmap_treated_as_zero(rgb_uint8: np.ndarray) -> None:
    heat = _ramp()
    heat_nan = heat.copy()
    heat_nan[2, 3] = np.nan
    heat_zero = heat.copy()
    heat_zero[2, 3] = 0.0
    np.testing.assert_array_equal(overlay(rgb_uint8, heat_nan), overlay(rgb_uint8, heat_zero))
    all_nan = np.full((3, 3), np.nan)
    np.testing.assert_array_equal(
        overlay(rgb_uint8, all_nan), overlay(rgb_uint8, np.zeros((3, 3)))
    )


def test_out_of_range_heat_clipped(rgb_uint8: np.ndarray) -> None:
    np.testing.assert_array_equal(
        overlay(rgb_uint8, np.full((8, 10), 3.0)), overlay(rgb_uint8, np.ones((8, 10)))
    )


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_bad_alpha(alpha) -> None:
    with pytest.raises(ValueError, match="alpha"):
        overlay(np.zeros((2, 2, 3)), np.zeros((2, 2)), alpha=alpha)


def test_non_2d_heatmap_rejected_with_hint() -> None:
    with pytest.raises(ValueError, match="plot"):
        overlay(np.zeros((4, 4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="2D"):
        overlay(np.zeros((4, 4, 3)), np.zeros((2, 4, 4)))


def test_bad_image_shape() -> None:
    with pytest.raises(ValueError, match="image"):
        overlay(np.zeros((4, 4, 5)), np.zeros((4, 4)))


def test_colorize_matches_alpha_one() -> None:
    heat = _ramp()
    np.testing.assert_array_equal(
        colorize(heat, "magma"), overlay(np.zeros((8, 10, 3)), heat, colormap="magma", alpha=1.0)
    )


def test_overlay_batch_matches_single() -> None:
    rng = np.random.default_rng(1)
    images = rng.random((3, 12, 12, 3), dtype=np.float32)
    heats = rng.random((3, 6, 6), dtype=np.float32)
    out = overlay_batch(images, heats, alpha=0.5, colormap="turbo")
    assert out.shape == (3, 12, 12, 3) and out.dtype == np.uint8
    for i in range(3):
        single = overlay(images[i], heats[i], alpha=0.5, colormap="turbo")
        np.testing.assert_array_equal(out[i], single)
    with pytest.raises(ValueError, match="2 heatmaps"):
        overlay_batch(images, heats[:2])
    with pytest.raises(ValueError, match="plot"):
        overlay_batch(images[..., 0, 0], heats[:, 0])


class _Explanation(SimpleNamespace):
    pass


def _explanation(n: int, h: int = 16, w: int = 16) -> _Explanation:
    rng = np.random.default_rng(2)
    return _Explanation(
        heatmaps=rng.random((n, h, w), dtype=np.float32),
        targets=np.arange(n, dtype=np.int64) % 3,
        scores=np.linspace(0.5, 0.9, n, dtype=np.float32),
    )


def test_plot_grid_layout_and_titles() -> None:
    images = np.random.default_rng(3).random((3, 16, 16, 3), dtype=np.float32)
    fig = plot(images, _explanation(3), class_names=["circle", "square", "triangle"])
    assert isinstance(fig, Figure)
    # Per row: image, heatmap, overlay, and the heatmap's colour bar.
    assert len(fig.axes) == 3 * 4
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("square (1)") and "0.7" in t for t in titles)
    # The heatmap panel is fixed to [0, 1].
    assert fig.axes[1].images[0].get_clim() == (0.0, 1.0)
    fig.savefig(__import__("io").BytesIO(), format="png")


def test_plot_max_images_and_bare_array() -> None:
    images = np.zeros((10, 16, 16), dtype=np.uint8)
    heat = np.random.default_rng(4).random((10, 4, 4), dtype=np.float32)
    fig = plot(images, heat, max_images=2)
    assert len(fig.axes) == 2 * 4
    assert [ax.get_title() for ax in fig.axes[:1]] == ["sample 0"]
    assert len(plot(images[:3], heat[:3], max_images=None).axes) == 3 * 4  # None: all of them


def test_plot_overlay_panel_shows_the_overlay() -> None:
    images = np.random.default_rng(5).random((1, 16, 16, 3), dtype=np.float32)
    expl = _explanation(1)
    fig = plot(images, expl, alpha=0.6, colormap="jet")
    shown = fig.axes[2].images[0].get_array()
    np.testing.assert_array_equal(
        np.asarray(shown), overlay(images[0], expl.heatmaps[0], alpha=0.6, colormap="jet")
    )


def test_plot_1d_signals() -> None:
    t = np.linspace(0, 6, 50, dtype=np.float32)
    signals = np.stack([np.sin(t), np.cos(t)])[..., None]  # [2, 50, 1]
    heat = np.random.default_rng(6).random((2, 13), dtype=np.float32)
    expl = SimpleNamespace(heatmaps=heat, targets=np.array([0, -1]), scores=np.ones(2))
    fig = plot(signals, expl)
    assert len(fig.axes) == 2 * 2  # signal panel + colour bar per row
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), np.sin(t))
    assert fig.axes[0].images[0].get_array().shape[-1] == 50, "heat stretched to the signal"
    # fig.axes lists the row panels first, then the colour bars.
    assert "custom target" in fig.axes[1].get_title()


def test_plot_volume_shows_hottest_slice() -> None:
    vol = np.zeros((1, 4, 8, 8), dtype=np.float32)
    vol[0, 2, 3:5, 3:5] = 1.0
    images = np.random.default_rng(7).random((1, 4, 8, 8, 1), dtype=np.float32)
    fig = plot(images, vol)
    assert "slice 2" in fig.axes[0].get_title()
    np.testing.assert_array_equal(np.asarray(fig.axes[1].images[0].get_array()), vol[0, 2])


def test_plot_errors() -> None:
    with pytest.raises(ValueError, match="2 images but 3 heatmaps"):
        plot(np.zeros((2, 8, 8, 3)), _explanation(3, 8, 8))
    with pytest.raises(ValueError, match="max_images"):
        plot(np.zeros((3, 8, 8, 3)), _explanation(3, 8, 8), max_images=0)
    with pytest.raises(ValueError, match="heatmaps must be"):
        plot(None, np.zeros((2, 2, 2, 2, 2)))
