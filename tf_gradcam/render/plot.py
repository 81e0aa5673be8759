"""A matplotlib summary figure of an explanation: image, heatmap, overlay.

The figure is built with ``matplotlib.figure.Figure`` directly, never through
``pyplot``: nothing is registered with a GUI backend, nothing is shown, and the
function works the same on a headless server (``fig.savefig(...)``) and in a
notebook (a returned ``Figure`` renders inline).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from tf_gradcam.render.overlay import (
    ColormapLike,
    _check_alpha,
    get_colormap,
    overlay,
    to_display_rgb,
)

__all__ = ["plot"]


def _field(explanation: Any, name: str) -> np.ndarray | None:
    value = getattr(explanation, name, None)
    return None if value is None else np.asarray(value)


def _title(i: int, targets, scores, class_names: Sequence[str] | None) -> str:
    parts = []
    if targets is not None:
        t = int(targets[i])
        if t < 0:
            parts.append("custom target")
        elif class_names is not None and t < len(class_names):
            parts.append(f"{class_names[t]} ({t})")
        else:
            parts.append(f"class {t}")
    if scores is not None:
        parts.append(f"score {float(scores[i]):.3g}")
    return "  ".join(parts) if parts else f"sample {i}"


def plot(
    images: np.ndarray | None,
    explanation: Any,
    *,
    colormap: ColormapLike = "jet",
    alpha: float = 0.4,
    class_names: Sequence[str] | None = None,
    max_images: int = 8,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw one row per explained input.

    For image heatmaps ``[N, H, W]`` each row holds the image, the heatmap with a colour
    bar (fixed to ``[0, 1]``) and the overlay, so a row has 4 axes (3 panels and the
    colour bar). For volumes ``[N, D, H, W]`` the depth slice with the most heat is
    shown the same way. For 1D heatmaps ``[N, T]`` a row is the signal's first channel
    drawn over the heatmap as a coloured background, plus a colour bar (2 axes).

    Args:
        images: the inputs the heatmaps explain: ``[N, H, W, C]`` / ``[N, H, W]`` images
            (``uint8`` or float, scaled for display as in :func:`tf_gradcam.overlay`),
            ``[N, D, H, W, C]`` volumes, ``[N, T, C]`` / ``[N, T]`` signals; or ``None``
            to draw the heatmaps alone.
        explanation: a :class:`tf_gradcam.Explanation` (anything with ``.heatmaps``;
            ``.targets [N] int64`` and ``.scores [N] float32`` are used for titles when
            present) or a bare heatmap array ``[N, ...]`` in ``[0, 1]``.
        colormap: matplotlib colormap name or ``Colormap``.
        alpha: heat weight of the overlay (and background opacity for 1D), in ``[0, 1]``.
        class_names: names for the target indices in the titles.
        max_images: draw at most this many rows (the first ones).
        figsize: ``(width, height)`` in inches; by default it grows with the rows.

    Returns:
        A ``matplotlib.figure.Figure`` (not shown; save it with ``fig.savefig``).
    """
    heatmaps = _field(explanation, "heatmaps")
    if heatmaps is None:
        heatmaps = np.asarray(explanation)
        targets = scores = None
    else:
        targets = _field(explanation, "targets")
        scores = _field(explanation, "scores")
    if heatmaps.ndim not in (2, 3, 4):
        raise ValueError(
            "heatmaps must be [N, T] (1D), [N, H, W] (2D) or [N, D, H, W] (3D), "
            f"got shape {heatmaps.shape}"
        )
    if max_images is None:
        max_images = heatmaps.shape[0]
    if isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) or (
            max_images < 1):
        raise ValueError(f"max_images must be an int >= 1 or None, got {max_images!r}")
    a = _check_alpha(alpha)
    cmap = get_colormap(colormap)
    n_total = heatmaps.shape[0]
    if n_total == 0:
        raise ValueError("nothing to plot: the explanation has no heatmaps")
    if images is not None:
        images = np.asarray(images)
        if images.shape[0] != n_total:
            raise ValueError(f"got {images.shape[0]} images but {n_total} heatmaps")
    n = min(n_total, int(max_images))
    # NaN would make imshow leave holes; show it as no heat, as overlay does.
    heatmaps = np.nan_to_num(heatmaps[:n].astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)

    if heatmaps.ndim == 2:
        return _plot_signals(images, heatmaps, targets, scores, class_names, cmap, a, figsize)

    cols = 3 if images is not None else 1
    if figsize is None:
        figsize = (3.3 * cols + 0.6, 3.0 * n)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, cols, squeeze=False))
    for i in range(n):
        heat = heatmaps[i]
        image = None if images is None else images[i]
        note = ""
        if heat.ndim == 3:
            # A volume: show the depth slice holding the most heat.
            depth = int(np.argmax(heat.reshape(heat.shape[0], -1).sum(axis=1)))
            if image is not None:
                # The volume may be at a different depth than the heatmap when a bare
                # array is passed; map the slice index proportionally.
                image = image[min(image.shape[0] - 1, depth * image.shape[0] // heat.shape[0])]
            heat = heat[depth]
            note = f" (slice {depth})"
        title = _title(i, targets, scores, class_names) + note
        row = axes[i]
        if image is not None:
            rgb = to_display_rgb(image)
            row[0].imshow(rgb)
            row[0].set_title(title, fontsize=9)
            hm_ax, ov_ax = row[1], row[2]
            ov_ax.imshow(overlay(rgb, heat, colormap=cmap, alpha=a))
            ov_ax.set_title("overlay", fontsize=9)
        else:
            hm_ax, ov_ax = row[0], None
        im = hm_ax.imshow(np.clip(heat, 0, 1), cmap=cmap, vmin=0.0, vmax=1.0)
        hm_ax.set_title("heatmap" if image is not None else title, fontsize=9)
        fig.colorbar(im, ax=hm_ax, fraction=0.046, pad=0.02)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def _plot_signals(images, heatmaps, targets, scores, class_names, cmap, alpha, figsize) -> Figure:
    n, t_heat = heatmaps.shape
    if figsize is None:
        figsize = (9.0, 1.9 * n + 0.4)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    mappable = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap)
    for i, ax in enumerate(axes):
        heat = np.clip(heatmaps[i], 0.0, 1.0)
        if images is not None:
            signal = np.asarray(images[i], dtype=np.float32)
            if signal.ndim == 2:
                signal = signal[:, 0]
            elif signal.ndim != 1:
                raise ValueError(
                    f"1D heatmaps need signals [N, T] or [N, T, C], got sample shape {signal.shape}"
                )
            length = signal.shape[0]
            if t_heat != length:
                # Stretch the heatmap onto the signal's time axis (sample centres aligned).
                heat = np.interp(
                    (np.arange(length) + 0.5) * t_heat / length - 0.5, np.arange(t_heat), heat
                )
            finite = signal[np.isfinite(signal)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            pad = 0.05 * (hi - lo) if hi > lo else 0.5
            lo, hi = lo - pad, hi + pad
            ax.imshow(
                heat[None, :], aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha,
                extent=(-0.5, length - 0.5, lo, hi), origin="lower", interpolation="nearest",
            )
            ax.plot(np.arange(length), signal, color="black", linewidth=1.0)
            ax.set_xlim(-0.5, length - 0.5)
            ax.set_ylim(lo, hi)
        else:
            ax.imshow(
                heat[None, :], aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
                extent=(-0.5, t_heat - 0.5, 0.0, 1.0), interpolation="nearest",
            )
            ax.set_yticks([])
        ax.set_title(_title(i, targets, scores, class_names), fontsize=9)
        fig.colorbar(mappable, ax=ax, fraction=0.03, pad=0.01)
    return fig
