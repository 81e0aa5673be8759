"""An evaluation on disk: the table as CSV and Markdown, the curves and the maps as figures.

Figures are drawn on ``matplotlib.figure.Figure`` directly (no pyplot, no GUI backend).
"""

from __future__ import annotations

import csv
import math
import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from tf_gradcam.evaluation.core import Evaluation

ARROW = {"lower": "↓", "higher": "↑"}
COLUMNS = ("method", "metric", "mean", "ci_low", "ci_high", "n", "nan", "interval", "better")


def write(result: Evaluation, out_dir: str, *, class_names: Sequence[str] | None = None
          ) -> dict[str, str]:
    """Write ``table.csv``, ``table.md``, ``curves.png`` (if deletion or insertion ran) and
    ``maps.png``; return ``{kind: path}``."""
    os.makedirs(out_dir, exist_ok=True)
    table = result.table()
    paths = {"csv": os.path.join(out_dir, "table.csv"), "markdown": os.path.join(out_dir,
                                                                                  "table.md")}
    write_csv(table, paths["csv"])
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write("# Saliency evaluation\n\n" + describe(result.settings) + "\n\n"
                + markdown_table(table) + "\n")
    curves = curves_figure(result)
    if curves is not None:
        paths["curves"] = os.path.join(out_dir, "curves.png")
        curves.savefig(paths["curves"], dpi=110)
    paths["maps"] = os.path.join(out_dir, "maps.png")
    maps_figure(result, class_names=class_names).savefig(paths["maps"], dpi=110)
    return paths


def write_csv(table: dict[str, np.ndarray], path: str) -> None:
    """The long table, one line per method x metric, numbers at full precision."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(len(table["method"])):
            writer.writerow([_cell(table[c][i]) for c in COLUMNS])


def describe(settings: dict) -> str:
    """One paragraph: how many images, the seed and how the intervals were computed."""
    level = settings.get("level", 0.95)
    return (
        f"{settings.get('n_images', '?')} images, seed {settings.get('seed', 0)}. Each cell is "
        f"the mean over images and its {100 * level:g} % confidence interval over images: "
        f"percentile bootstrap ({settings.get('resamples', 10_000)} resamples) for means, "
        "Wilson score interval for proportions (pointing game, localization, increase in "
        "confidence). ↓ lower is better, ↑ higher is better. Average drop and increase in "
        "confidence are in percent."
    )


def markdown_table(table: dict[str, np.ndarray], *, methods: Sequence[str] | None = None,
                   metrics: Sequence[str] | None = None) -> str:
    """Methods as rows, metrics as columns, cells ``mean [low, high]``."""
    methods = list(dict.fromkeys(table["method"])) if methods is None else list(methods)
    metrics = list(dict.fromkeys(table["metric"])) if metrics is None else list(metrics)
    cell: dict[tuple[str, str], str] = {}
    better: dict[str, str] = {}
    for i in range(len(table["method"])):
        key = (str(table["method"][i]), str(table["metric"][i]))
        mean, lo, hi = table["mean"][i], table["ci_low"][i], table["ci_high"][i]
        ref = max(abs(mean), abs(lo), abs(hi)) if np.isfinite(mean) else 0.0
        text = ("n/a" if not np.isfinite(mean)
                else f"{fmt(mean, ref)} [{fmt(lo, ref)}, {fmt(hi, ref)}]")
        if table["nan"][i] and np.isfinite(mean):
            text += f" ({int(table['nan'][i])} NaN)"
        cell[key] = text
        better[key[1]] = str(table["better"][i])
    head = "| method | " + " | ".join(f"{m} {ARROW.get(better.get(m, ''), '')}".strip()
                                        for m in metrics) + " |"
    lines = [head, "|---" * (len(metrics) + 1) + "|"]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(cell.get((method, m), "") for m in metrics)
                     + " |")
    return "\n".join(lines)


def fmt(value: float, reference: float | None = None) -> str:
    """Three decimals below 10, one from 10 on, none from 100 on (by ``reference``'s size, the
    value's own by default, so that a mean and its interval share their decimals)."""
    if not math.isfinite(value):
        return "n/a"
    magnitude = abs(value) if reference is None else abs(reference)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def curves_figure(result: Evaluation) -> Any:
    """Mean deletion and insertion curves per method (``None`` when neither ran)."""
    from matplotlib.figure import Figure

    kinds = [k for k in ("deletion", "insertion")
             if any(k in result.details[m] for m in result.methods)]
    if not kinds:
        return None
    fig = Figure(figsize=(5.2 * len(kinds), 4.0), layout="constrained")
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds):
        for method in result.methods:
            curve = result.details[method].get(kind)
            if curve is None:
                continue
            ax.plot(curve.fractions, curve.scores.mean(axis=0),
                    label=f"{method} (AUC {curve.auc:.3f})")
        ax.set_title(f"{kind} ({'lower' if kind == 'deletion' else 'higher'} AUC is better)")
        ax.set_xlabel(f"fraction of pixels {'removed' if kind == 'deletion' else 'inserted'}")
        ax.set_ylabel("target probability (mean over images)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    return fig


def maps_figure(result: Evaluation, *, class_names: Sequence[str] | None = None) -> Any:
    """A grid: one row per sample image, the image then each method's map over it."""
    from matplotlib.figure import Figure

    from tf_gradcam.render import overlay_batch, to_display_rgb

    images = result.sample_images
    rows, cols = len(images), len(result.methods) + 1
    fig = Figure(figsize=(1.6 * cols, 1.6 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    shown = images if images.ndim == 4 else images[..., None]
    for c in range(cols):
        if c == 0:
            pictures = [to_display_rgb(img) for img in shown]
            title = "image"
        else:
            method = result.methods[c - 1]
            heat = result.sample_maps[method]
            pictures = list(overlay_batch(shown, heat)) if heat.ndim == 3 else [
                to_display_rgb(img) for img in shown]
            title = method
        for r in range(rows):
            ax = axes[r, c]
            ax.imshow(pictures[r])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                t = int(result.targets[r])
                name = class_names[t] if class_names is not None and t < len(class_names) else t
                ax.set_ylabel(f"class {name}", fontsize=7)
    return fig


def _cell(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return "nan" if not np.isfinite(value) else repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return str(value)
