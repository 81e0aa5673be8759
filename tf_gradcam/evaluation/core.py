"""Every method against every metric on the same images and classes, with intervals."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tf_gradcam.evaluation.catalog import _COMPUTE, METRICS, Metric, Row  # noqa: F401
from tf_gradcam.evaluation.data import Data, gather


@dataclass
class Evaluation:
    """What :func:`run` measured.

    Attributes:
        methods: the method labels, in order.
        metrics: the metric names computed.
        rows: ``{metric: [Row, ...]}``.
        per_image: ``{method: {row name: [N] float64}}`` (NaN where undefined or not computed).
        details: ``{method: {"deletion": PerturbationCurve, "insertion": ..., "road":
            RoadResult, "sanity": SanityResult, ...}}`` the metrics' full results.
        sample_maps: ``{method: [k, H, W]}`` the maps of the first ``k`` images.
        sample_images: ``[k, ...]`` those images.
        targets: ``[N] int64`` the classes explained and scored for every method.
        settings: the number of images, the seed, the interval level and resamples.
    """

    methods: list[str]
    metrics: list[str]
    rows: dict[str, list[Row]]
    per_image: dict[str, dict[str, np.ndarray]]
    details: dict[str, dict[str, Any]]
    sample_maps: dict[str, np.ndarray]
    sample_images: np.ndarray
    targets: np.ndarray
    settings: dict = field(default_factory=dict)

    def table(self) -> dict[str, np.ndarray]:
        """The long table as a plain dict of equal-length arrays, one row per method x metric
        row: ``method``, ``metric``, ``mean``, ``ci_low``, ``ci_high``, ``n`` (images with a
        value), ``nan`` (images without), ``interval`` (``"bootstrap"`` or ``"wilson"``),
        ``better`` (``"lower"`` or ``"higher"``)."""
        from tf_gradcam.metrics.stats import bootstrap_ci, wilson_ci

        level = self.settings.get("level", 0.95)
        resamples = self.settings.get("resamples", 10_000)
        seed = self.settings.get("seed", 0)
        cols: dict[str, list] = {k: [] for k in ("method", "metric", "mean", "ci_low", "ci_high",
                                                 "n", "nan", "interval", "better")}
        for method in self.methods:
            for metric in self.metrics:
                for row in self.rows[metric]:
                    values = self.per_image[method].get(row.name)
                    if values is None:
                        continue
                    finite = np.isfinite(values)
                    if row.kind == "proportion":
                        p, lo, hi = wilson_ci(values[finite], level=level)
                        mean, lo, hi = p * row.scale, lo * row.scale, hi * row.scale
                        interval = "wilson"
                    else:
                        mean, lo, hi = bootstrap_ci(values, level=level, resamples=resamples,
                                                    seed=seed)
                        interval = "bootstrap"
                    for key, value in (("method", method), ("metric", row.name),
                                       ("mean", mean), ("ci_low", lo), ("ci_high", hi),
                                       ("n", int(finite.sum())), ("nan", int((~finite).sum())),
                                       ("interval", interval), ("better", row.better)):
                        cols[key].append(value)
        out: dict[str, np.ndarray] = {}
        for key, column in cols.items():
            if key in ("n", "nan"):
                out[key] = np.asarray(column, np.int64)
            elif key in ("mean", "ci_low", "ci_high"):
                out[key] = np.asarray(column, np.float64)
            else:
                out[key] = np.asarray(column, dtype=str)
        return out

    def write(self, out_dir: str, *, class_names: Sequence[str] | None = None) -> dict[str, str]:
        """Write ``table.csv``, ``table.md``, ``curves.png`` and ``maps.png`` to ``out_dir``;
        return their paths by kind."""
        from tf_gradcam.evaluation import report

        return report.write(self, out_dir, class_names=class_names)


def run(
    model: Any,
    data: Any,
    methods: Sequence[Any] | str = ("gradcam",),
    metrics: Sequence[str] | str | None = None,
    *,
    targets: Any = None,
    layer: Any = None,
    method_options: dict | None = None,
    metric_options: dict | None = None,
    labels: Any = None,
    boxes: Any = None,
    masks: Any = None,
    max_images: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    level: float = 0.95,
    resamples: int = 10_000,
    sample_size: int = 6,
    verbose: int = 1,
) -> Evaluation:
    """Compute every metric for every method; see :func:`evaluate` for the arguments.

    Returns:
        An :class:`Evaluation` (per-image values, the metrics' full results, sample maps).
    """
    import keras

    from tf_gradcam.metrics._inputs import Scorer, check_seed, check_verbose, progress
    from tf_gradcam.metrics.sanity import make_explainer

    if isinstance(model, str):
        model = keras.saving.load_model(model, compile=False)
    check_verbose(verbose)
    seed = check_seed(seed)
    found = gather(data, model, labels=labels, boxes=boxes, masks=masks, max_images=max_images)
    chosen_methods = _methods(methods)
    chosen_metrics = _metrics(metrics, found, chosen_methods)
    metric_options = dict(metric_options or {})
    unknown = set(metric_options) - set(METRICS)
    if unknown:
        raise ValueError(f"metric_options for unknown metrics {sorted(unknown)}; the metrics are "
                         f"{sorted(METRICS)}.")
    method_options = dict(method_options or {})

    scorer = Scorer(model, "auto", batch_size)
    classes = _classes(targets, found, scorer)
    bar = progress(len(chosen_methods) * (len(chosen_metrics) + 1), verbose, unit="step")
    per_image: dict[str, dict[str, np.ndarray]] = {}
    details: dict[str, dict[str, Any]] = {}
    sample_maps: dict[str, np.ndarray] = {}
    done = 0
    k = min(sample_size, len(found.images))
    for label, method in chosen_methods:
        explainer = None
        options = method_options.get(label, {})
        if isinstance(method, np.ndarray):
            heat = _check_maps(method, label, found.images)
        else:
            explainer = make_explainer(model, method, layer, options)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # empty maps: scored as they are
                heat = explainer(found.images, classes, batch_size=batch_size).heatmaps
        done += 1
        bar.update(done)
        sample_maps[label] = heat[:k]
        values: dict[str, np.ndarray] = {}
        extra: dict[str, Any] = {}
        ran: set = set()
        for name in chosen_metrics:
            compute = _COMPUTE[name]
            if compute in ran:  # average drop and increase come from the same scores
                done += 1
                bar.update(done)
                continue
            ran.add(compute)
            opts = metric_options.get(name, {})
            computed = compute(model, found, heat, classes, explainer, method,
                               dict(layer=layer, options=options, batch_size=batch_size,
                                    seed=seed, opts=opts))
            for key, value in computed.items():
                if key.startswith("_"):
                    extra[key[1:]] = value
                else:
                    values[key] = np.asarray(value, np.float64)
            done += 1
            bar.update(done)
        per_image[label] = values
        details[label] = extra
    return Evaluation(
        methods=[label for label, _ in chosen_methods], metrics=chosen_metrics,
        rows={name: list(METRICS[name].rows) for name in chosen_metrics},
        per_image=per_image, details=details, sample_maps=sample_maps,
        sample_images=found.images[:k], targets=classes,
        settings={"n_images": len(found.images), "seed": seed, "level": level,
                  "resamples": resamples, "batch_size": batch_size},
    )


def evaluate(
    model: Any,
    data: Any,
    methods: Sequence[Any] | str = ("gradcam",),
    metrics: Sequence[str] | str | None = None,
    *,
    targets: Any = None,
    layer: Any = None,
    method_options: dict | None = None,
    metric_options: dict | None = None,
    labels: Any = None,
    boxes: Any = None,
    masks: Any = None,
    max_images: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    level: float = 0.95,
    resamples: int = 10_000,
    out_dir: str | None = None,
    class_names: Sequence[str] | None = None,
    verbose: int = 1,
) -> dict[str, np.ndarray]:
    """Evaluate saliency methods on one model and one set of images: a table with intervals.

    Every method explains the same images for the same classes (``targets``); every metric
    scores every method's maps; each table row is a mean over images with a confidence interval
    over images (percentile bootstrap for means, Wilson for proportions; see
    :mod:`tf_gradcam.metrics.stats`).

    Args:
        model: a ``keras.Model`` with one image input and one ``[N, classes]`` output, or the
            path of a saved ``.keras`` model.
        data: ``[N, H, W, C]`` images in the model's input space; ``(images, labels)``; a
            ``tf.data.Dataset`` of images or ``(images, labels)`` (batched or not); an object
            with ``images`` and optionally ``labels``, ``boxes``, ``masks`` (e.g.
            ``tfg.data.make_shapes(...)``); or a folder / list of image files (scaled to
            ``[0, 1]``).
        methods: method names of ``tfg.METHODS`` (``"all"`` for every one), explainer classes,
            or ``(label, heatmaps [N, H, W])`` pairs of precomputed maps (a baseline map, or
            another library's), scored by every metric that needs no explainer.
        metrics: names of :data:`METRICS` (``"all"`` for every applicable one); default: every
            metric marked default whose ground truth is available (localization needs
            ``boxes`` / ``masks``; ``max_sensitivity`` and ``sanity`` run only when asked).
        targets: ``None`` (each image's top class), ``"label"`` (the labels), an int or ``N``
            ints: the classes explained and scored, the same for every method.
        layer: the explained layer (``None``: each method's automatic choice).
        method_options: ``{method: {option: value}}`` for the explainers' constructors.
        metric_options: ``{metric: {option: value}}`` passed to the metric functions, e.g.
            ``{"road": {"fractions": (0.1, 0.5, 0.9)}, "mu_fidelity": {"samples": 100}}``.
        labels, boxes, masks: ground truth, if not in ``data``: ``[N]`` classes (ROAD's hits),
            ``[N, 4]`` boxes ``(y0, x0, y1, x1)``, ``[N, H, W]`` bool masks.
        max_images: use the first ``max_images`` images only.
        batch_size: images per model or explainer call.
        seed: seeds every random draw and the bootstrap.
        level, resamples: the intervals' coverage and bootstrap resamples.
        out_dir: write ``table.csv``, ``table.md`` (methods x metrics, with intervals),
            ``curves.png`` (deletion and insertion curves per method) and ``maps.png`` (the maps
            of the first images per method) there.
        class_names: names for the figure's titles.
        verbose: 0 silent, 1 a progress bar over (method, metric) steps, 2 one line at the end.

    Returns:
        The table as a plain dict of equal-length arrays (see :meth:`Evaluation.table`):
        ``method``, ``metric``, ``mean``, ``ci_low``, ``ci_high``, ``n``, ``nan``,
        ``interval``, ``better``. :func:`tf_gradcam.evaluation.run` returns the per-image values
        and the full results as well.
    """
    result = run(model, data, methods, metrics, targets=targets, layer=layer,
                 method_options=method_options, metric_options=metric_options, labels=labels,
                 boxes=boxes, masks=masks, max_images=max_images, batch_size=batch_size,
                 seed=seed, level=level, resamples=resamples, verbose=verbose)
    if out_dir is not None:
        result.write(out_dir, class_names=class_names)
    return result.table()


# ------------------------------------------------------------------------ choices
def _methods(methods: Any) -> list[tuple[str, Any]]:
    from tf_gradcam.engine.explainer import Explainer, get_method
    from tf_gradcam.methods import METHODS

    if isinstance(methods, str):
        methods = sorted(METHODS) if methods == "all" else [methods]
    out: list[tuple[str, Any]] = []
    for m in methods:
        if isinstance(m, str):
            cls = get_method(m)  # raises a ValueError listing the names
            out.append((cls.name, cls))
        elif isinstance(m, type) and issubclass(m, Explainer):
            out.append((m.name if m.name != "base" else m.__name__, m))
        elif isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str):
            heat = np.asarray(m[1], np.float32)
            out.append((m[0], heat))
        else:
            raise ValueError(f"A method is a name of tfg.METHODS, an explainer class or a "
                             f"(label, heatmaps) pair; got {m!r}.")
    labels = [label for label, _ in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Each method must appear once; got {labels}.")
    if not out:
        raise ValueError("methods is empty: nothing to evaluate.")
    return out


def _metrics(metrics: Any, found: Data, methods: list) -> list[str]:
    have = {"boxes": found.boxes is not None, "masks": found.masks is not None}
    have["boxes|masks"] = have["boxes"] or have["masks"]
    have["explainer"] = True

    def available(m: Metric) -> bool:
        return all(have[need] for need in m.needs)

    if metrics is None:
        return [name for name, m in METRICS.items() if m.default and available(m)]
    if isinstance(metrics, str):
        if metrics == "all":
            return [name for name, m in METRICS.items() if available(m)]
        metrics = [metrics]
    out = []
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"Unknown metric {name!r}; choose from {sorted(METRICS)} or 'all'.")
        missing = [need for need in METRICS[name].needs if not have[need]]
        if missing:
            raise ValueError(f"Metric {name!r} needs {missing[0].replace('|', ' or ')}: pass "
                             f"them (boxes=[N, 4], masks=[N, H, W]) or drop the metric.")
        if name not in out:
            out.append(name)
    return out


def _check_maps(heat: np.ndarray, label: str, images: np.ndarray) -> np.ndarray:
    n = len(images)
    if heat.ndim < 2 or len(heat) < n or heat.shape[1:] != images.shape[1: heat.ndim]:
        raise ValueError(f"The maps of {label!r} must be [N, H, W] = [{n}, "
                         f"{', '.join(map(str, images.shape[1:3]))}], got {heat.shape}.")
    if not np.isfinite(heat).all():
        raise ValueError(f"The maps of {label!r} contain NaN or infinity.")
    return heat[:n]


def _classes(targets: Any, found: Data, scorer: Any) -> np.ndarray:
    from tf_gradcam.metrics._inputs import resolve_targets

    if isinstance(targets, str):
        if targets != "label":
            raise ValueError(f"targets must be None, 'label', an int or N ints; got {targets!r}.")
        if found.labels is None:
            raise ValueError("targets='label' needs labels (in data, or labels=).")
        return found.labels
    return resolve_targets(targets, None, scorer, found.images)
