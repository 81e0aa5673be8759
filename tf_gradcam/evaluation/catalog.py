"""What each name in ``metrics=[...]`` computes: its table rows, what it needs, and the call of
the metric function of :mod:`tf_gradcam.metrics` behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Row:
    """One line of the table: a number per image, reduced to a mean with an interval."""

    name: str
    kind: str  # "mean" (percentile bootstrap) or "proportion" (Wilson)
    better: str  # "lower" or "higher"
    scale: float = 1.0  # proportions reported in percent have scale 100


@dataclass(frozen=True)
class Metric:
    """What ``metrics=[name]`` computes: its rows, what it needs, how it is computed."""

    name: str
    rows: tuple[Row, ...]
    needs: tuple[str, ...] = ()  # of "boxes", "masks", "boxes|masks", "explainer"
    default: bool = True
    summary: str = ""


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("pointing_game", (Row("pointing_game", "proportion", "higher"),), ("boxes|masks",),
           summary="share of maps whose peak is on the object (15 px tolerance)"),
    Metric("box_iou", (Row("box_iou", "mean", "higher"),), ("boxes",),
           summary="IoU of the box around the largest region above 15 % of the max"),
    Metric("localization", (Row("localization", "proportion", "higher"),), ("boxes",),
           summary="share of those boxes with IoU >= 0.5"),
    Metric("mask_iou", (Row("mask_iou", "mean", "higher"),), ("masks",),
           summary="IoU of the region above 15 % of the max with the object mask"),
    Metric("deletion", (Row("deletion_auc", "mean", "lower"),),
           summary="area under the probability as the most salient pixels are removed"),
    Metric("insertion", (Row("insertion_auc", "mean", "higher"),),
           summary="area under the probability as they are put back on a blurred canvas"),
    Metric("average_drop", (Row("average_drop", "mean", "lower"),),
           summary="mean % drop of the probability on image * map"),
    Metric("increase_in_confidence",
           (Row("increase_in_confidence", "proportion", "higher", 100.0),),
           summary="% of images whose probability rises on image * map"),
    Metric("road", (Row("road_morf", "mean", "lower"), Row("road_lerf", "mean", "higher"),
                    Row("road_combined", "mean", "higher")),
           summary="probability after imputing the most / least relevant 10-90 %; (LeRF-MoRF)/2"),
    Metric("mu_fidelity", (Row("mu_fidelity", "mean", "higher"),),
           summary="rank correlation of map mass and probability drop over random subsets"),
    Metric("sparseness", (Row("sparseness", "mean", "higher"),),
           summary="Gini index of the map"),
    Metric("complexity", (Row("complexity", "mean", "lower"),),
           summary="entropy of the map's fractional contributions"),
    Metric("max_sensitivity", (Row("max_sensitivity", "mean", "lower"),), ("explainer",),
           default=False, summary="largest relative map change under uniform noise of 0.2"),
    Metric("sanity", tuple(Row(f"sanity_{m}", "mean", "lower")
                           for m in ("spearman", "spearman_abs", "ssim", "hog")),
           ("explainer",), default=False,
           summary="similarity with the map once every layer is randomised (cascading)"),
)}


# ------------------------------------------------------------------------ the metrics
def _localization(kind: str) -> Callable:
    def compute(model, found, heat, classes, explainer, method, ctx):
        from tf_gradcam import localize
        from tf_gradcam.metrics import box_iou, mask_iou, pointing_hits

        threshold = ctx["opts"].get("threshold", localize.DEFAULT_THRESHOLD)
        if kind == "pointing_game":
            gt = found.masks if found.masks is not None else found.boxes
            return {"pointing_game": pointing_hits(heat, gt, **ctx["opts"])}
        if kind == "mask_iou":
            return {"mask_iou": mask_iou(heat, found.masks, threshold)}
        ious = np.asarray(box_iou(localize.bboxes(heat, threshold), found.boxes))
        if kind == "box_iou":
            return {"box_iou": ious}
        return {"localization": ious >= ctx["opts"].get("iou", 0.5)}

    return compute


def _curve(insert: bool) -> Callable:
    def compute(model, found, heat, classes, explainer, method, ctx):
        from tf_gradcam.metrics import deletion_curve, insertion_curve

        fn = insertion_curve if insert else deletion_curve
        curve = fn(model, found.images, heat, classes, batch_size=ctx["batch_size"],
                   **ctx["opts"])
        key = "insertion" if insert else "deletion"
        return {f"{key}_auc": curve.aucs, f"_{key}": curve}

    return compute


def _confidence(model, found, heat, classes, explainer, method, ctx):
    from tf_gradcam.metrics import confidence_scores

    scores = confidence_scores(model, found.images, heat, classes, batch_size=ctx["batch_size"],
                               **ctx["opts"])
    return {"average_drop": scores.drops, "increase_in_confidence": scores.increases,
            "_confidence": scores}


def _road(model, found, heat, classes, explainer, method, ctx):
    from tf_gradcam.metrics import road

    opts = {"seed": ctx["seed"], **ctx["opts"]}
    result = road(model, found.images, heat, classes, labels=found.labels,
                  batch_size=ctx["batch_size"], **opts)
    return {"road_morf": result.morf.mean(axis=1), "road_lerf": result.lerf.mean(axis=1),
            "road_combined": result.combined_per_image, "_road": result}


def _mu_fidelity(model, found, heat, classes, explainer, method, ctx):
    from tf_gradcam.metrics import mu_fidelity

    opts = {"seed": ctx["seed"], **ctx["opts"]}
    return {"mu_fidelity": mu_fidelity(model, found.images, heat, classes,
                                       batch_size=ctx["batch_size"], **opts)}


def _map_only(fn_name: str) -> Callable:
    def compute(model, found, heat, classes, explainer, method, ctx):
        from tf_gradcam import metrics

        return {fn_name: getattr(metrics, fn_name)(heat, **ctx["opts"])}

    return compute


def _sensitivity(model, found, heat, classes, explainer, method, ctx):
    from tf_gradcam.metrics import max_sensitivity

    n = len(found.images)
    if explainer is None:
        return {"max_sensitivity": np.full(n, np.nan)}
    opts = {"seed": ctx["seed"], **ctx["opts"]}
    return {"max_sensitivity": max_sensitivity(explainer, found.images, classes,
                                               batch_size=ctx["batch_size"], **opts)}


def _sanity(model, found, heat, classes, explainer, method, ctx):
    from tf_gradcam.metrics import model_randomization

    n = len(found.images)
    rows = ("spearman", "spearman_abs", "ssim", "hog")
    if explainer is None:
        return {f"sanity_{m}": np.full(n, np.nan) for m in rows}
    opts = {"seed": ctx["seed"], **ctx["opts"]}
    result = model_randomization(model, found.images, method, classes, layer=ctx["layer"],
                                 method_options=ctx["options"], batch_size=ctx["batch_size"],
                                 **opts)
    out: dict[str, Any] = {f"sanity_{m}": result.final(m) for m in rows}
    out["_sanity"] = result
    return out


_COMPUTE: dict[str, Callable] = {
    "pointing_game": _localization("pointing_game"),
    "box_iou": _localization("box_iou"),
    "localization": _localization("localization"),
    "mask_iou": _localization("mask_iou"),
    "deletion": _curve(insert=False),
    "insertion": _curve(insert=True),
    "average_drop": _confidence,
    "increase_in_confidence": _confidence,
    "road": _road,
    "mu_fidelity": _mu_fidelity,
    "sparseness": _map_only("sparseness"),
    "complexity": _map_only("complexity"),
    "max_sensitivity": _sensitivity,
    "sanity": _sanity,
}
