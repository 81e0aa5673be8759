"""The faithfulness table of ``docs/faithfulness.md``, measured on the demo's shapes data.

    python benchmarks/faithfulness.py            # train, evaluate, write the JSON and the doc
    python benchmarks/faithfulness.py --render   # re-render docs/faithfulness.md from the JSON

The demo's recipe (:mod:`tf_gradcam.demo`): the small CNN trained on the labels of 3000 generated
shape images (never on boxes or masks), then every method registered in ``tfg.METHODS`` and a
centred Gaussian map (a baseline that knows nothing about the image) explain held-out images
for the model's top class. ``tfg.evaluation.run`` scores them all: localization against the known
boxes and masks, deletion / insertion, average drop / increase in confidence, ROAD, MuFidelity,
sparseness / complexity, and Adebayo's sanity checks (cascading randomisation of a copy of the
model; and a second network trained on permuted labels). Every figure in the doc, including the
sentences on which orderings of the papers are reproduced, is computed here from the per-image
values and stored in ``benchmarks/results/faithfulness.json``: nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _record import RESULTS, Record  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "faithfulness.md")
JSON = os.path.join(RESULTS, "faithfulness.json")

METRICS = ["pointing_game", "box_iou", "localization", "mask_iou", "deletion", "insertion",
           "average_drop", "increase_in_confidence", "road", "mu_fidelity", "sparseness",
           "complexity", "sanity"]
ROAD_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
OPTIONS = {"deletion": {"steps": 32}, "insertion": {"steps": 32},
           "road": {"fractions": ROAD_FRACTIONS}, "mu_fidelity": {"samples": 50}}
BASELINE = "gaussian"
SIGMA = 0.25  # of the image side: the baseline's spread

# What the papers report, as (A, B, row, "lower"/"higher", the paper's finding in words).
CLAIMS = [
    ("gradcam++", "gradcam", "average_drop", "lower",
     "Grad-CAM++ (Chattopadhyay et al., WACV 2018; VGG-16 on ImageNet) reports a lower average "
     "drop for Grad-CAM++ than for Grad-CAM"),
    ("scorecam", "gradcam", "average_drop", "lower",
     "Score-CAM (Wang et al., CVPR-W 2020; VGG-16 on ImageNet) reports a lower average drop "
     "for Score-CAM than for Grad-CAM"),
    ("scorecam", "gradcam++", "average_drop", "lower",
     "the same Score-CAM table reports a lower average drop for Score-CAM than for Grad-CAM++"),
    ("gradcam++", "gradcam", "increase_in_confidence", "higher",
     "Grad-CAM++ reports a higher increase in confidence for Grad-CAM++ than for Grad-CAM (the "
     "Score-CAM table has them the other way round)"),
    ("scorecam", "gradcam", "increase_in_confidence", "higher",
     "Score-CAM reports a higher increase in confidence for Score-CAM than for Grad-CAM"),
    ("guidedbackprop", "gradcam", "sanity_spearman", "higher",
     "Adebayo et al. (NeurIPS 2018) find guided backprop's maps barely changed by randomising "
     "the model and Grad-CAM's destroyed: a higher similarity for guided backprop"),
]


AGAINST_BASELINE = [("deletion_auc", "lower"), ("insertion_auc", "higher"),
                    ("average_drop", "lower"), ("road_combined", "higher"),
                    ("mu_fidelity", "higher"), ("mask_iou", "higher")]


def measure(args) -> dict:
    import keras
    import tensorflow as tf

    import tf_gradcam as tfg
    from tf_gradcam.data import ShapesData, make_shapes, train_small_cnn
    from tf_gradcam.metrics import label_randomization, paired_bootstrap_ci

    start = time.perf_counter()
    train_seed, test_seed = (int(s) for s in np.random.SeedSequence(args.seed).generate_state(2))
    train = make_shapes(args.train, seed=train_seed)
    test = make_shapes(args.images, seed=test_seed)
    t0 = time.perf_counter()
    model = train_small_cnn(train, epochs=args.epochs, seed=args.seed)
    train_seconds = time.perf_counter() - t0
    accuracy = float(np.mean(model.predict(test.images, verbose=0).argmax(1) == test.labels))
    print(f"trained in {train_seconds:.0f} s, held-out accuracy {accuracy:.3f}", flush=True)

    size = test.images.shape[1]
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    gauss = np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / (2 * (SIGMA * size) ** 2))
    baseline = np.repeat((gauss / gauss.max()).astype(np.float32)[None], len(test), axis=0)
    methods = sorted(tfg.METHODS)
    result = tfg.evaluation.run(model, test, methods + [(BASELINE, baseline)], METRICS,
                                metric_options=OPTIONS, seed=args.seed, verbose=1)
    record = Record("faithfulness", images=len(test), train_images=args.train,
                    epochs=args.epochs, seed=args.seed, accuracy=accuracy,
                    road_fractions=list(ROAD_FRACTIONS), options=OPTIONS, sigma=SIGMA,
                    methods=methods + [BASELINE], metrics=METRICS, image_size=size,
                    class_names=list(test.class_names))
    table = result.table()
    record.data["rows"] = [{k: _plain(table[k][i]) for k in table}
                           for i in range(len(table["method"]))]

    # The paired comparisons behind the claims: per-image differences, same images.
    comparisons = []
    for a, b, metric, direction, source in CLAIMS:
        if a not in result.per_image or b not in result.per_image:
            continue
        va, vb = result.per_image[a][metric], result.per_image[b][metric]
        scale = 100.0 if metric == "increase_in_confidence" else 1.0
        d, lo, hi = paired_bootstrap_ci(va * scale, vb * scale, seed=args.seed)
        comparisons.append(dict(a=a, b=b, metric=metric, direction=direction, finding=source,
                                diff=_plain(d), ci_low=_plain(lo), ci_high=_plain(hi),
                                n=int(np.sum(np.isfinite(va) & np.isfinite(vb)))))
    record.data["comparisons"] = comparisons

    # Every method against the baseline map, per metric: does it beat a map that looks at
    # nothing, on the same images?
    versus = {}
    for m in methods:
        versus[m] = {}
        for row, better in AGAINST_BASELINE:
            d, lo, hi = paired_bootstrap_ci(result.per_image[m][row],
                                            result.per_image[BASELINE][row], seed=args.seed)
            versus[m][row] = dict(diff=_plain(d), ci_low=_plain(lo), ci_high=_plain(hi),
                                  better=better)
    record.data["versus_baseline"] = versus

    # Curves: ROAD per fraction, cascading randomisation per state.
    record.data["road"] = {m: {"morf": _plain(result.details[m]["road"].morf.mean(0)),
                               "lerf": _plain(result.details[m]["road"].lerf.mean(0))}
                           for m in result.methods}
    record.data["cascading"] = {m: {"states": result.details[m]["sanity"].states,
                                    "spearman": _plain(result.details[m]["sanity"].mean()),
                                    "ssim": _plain(result.details[m]["sanity"].mean("ssim"))}
                                for m in methods if "sanity" in result.details[m]}

    # Data randomisation: one network trained on permuted labels, the same recipe.
    trained: dict = {}

    def train_on(x, y):
        if "model" not in trained:
            t = time.perf_counter()
            shuffled = ShapesData(images=x, labels=y, boxes=train.boxes, masks=train.masks,
                                  class_names=train.class_names)
            trained["model"] = train_small_cnn(shuffled, epochs=args.epochs, seed=args.seed)
            trained["seconds"] = time.perf_counter() - t
            trained["accuracy"] = float(np.mean(
                trained["model"].predict(x, verbose=0).argmax(1) == y))
        return trained["model"]

    labels = {}
    for m in methods:
        sims = label_randomization(model, train_on, train.images, train.labels, test.images,
                                   m, result.targets, seed=args.seed)
        labels[m] = {k: _nanmean(getattr(sims, k)) for k in ("spearman", "ssim", "hog")}
    record.data["label_randomization"] = {"methods": labels,
                                          "train_accuracy": trained.get("accuracy")}
    record.data["setup"]["seconds"] = time.perf_counter() - start
    record.data["setup"]["train_seconds"] = train_seconds
    record.data["setup"]["tensorflow"] = tf.__version__
    record.data["setup"]["keras"] = keras.__version__
    path = record.save()
    print(f"wrote {path} in {record.data['setup']['seconds']:.0f} s", flush=True)
    return record.data


# ------------------------------------------------------------------------ the document
LOCALIZATION = ["pointing_game", "box_iou", "localization", "mask_iou"]
FAITHFULNESS = ["deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence",
                "road_morf", "road_lerf", "road_combined", "mu_fidelity"]
CONCISION = ["sparseness", "complexity"]
SANITY = ["sanity_spearman", "sanity_spearman_abs", "sanity_ssim", "sanity_hog"]
NAMES = {"average_drop": "average drop %", "increase_in_confidence": "increase %",
         "localization": "loc. acc. (IoU ≥ 0.5)", "pointing_game": "pointing game",
         "box_iou": "box IoU", "mask_iou": "mask IoU", "deletion_auc": "deletion AUC",
         "insertion_auc": "insertion AUC", "road_morf": "ROAD MoRF", "road_lerf": "ROAD LeRF",
         "road_combined": "ROAD (LeRF-MoRF)/2", "mu_fidelity": "MuFidelity",
         "sanity_spearman": "Spearman", "sanity_spearman_abs": "Spearman (abs)",
         "sanity_ssim": "SSIM", "sanity_hog": "HOG Spearman"}


def render(data: dict) -> str:
    from tf_gradcam.evaluation.report import fmt, markdown_table

    setup, env = data["setup"], data["environment"]
    rows = data["rows"]
    table = {k: np.asarray([r[k] for r in rows]) for k in rows[0]}
    for k in ("mean", "ci_low", "ci_high"):
        table[k] = table[k].astype(np.float64)
    methods = setup["methods"]

    def section(metrics, rows=methods):
        keep = np.isin(table["metric"], metrics)
        sub = {k: v[keep] for k, v in table.items()}
        sub["metric"] = np.asarray([NAMES.get(m, m) for m in sub["metric"]])
        return markdown_table(sub, methods=rows, metrics=[NAMES.get(m, m) for m in metrics])

    lines = [
        "# Faithfulness and localization of every method",
        "",
        "*Generated by `python benchmarks/faithfulness.py` from "
        "`benchmarks/results/faithfulness.json`; do not edit by hand.*",
        "",
        f"The demo's small CNN (`tf_gradcam.data.small_cnn`), trained on the **labels only** of "
        f"{setup['train_images']} generated shape images ({setup['epochs']} epoch(s), held-out "
        f"accuracy {setup['accuracy']:.3f}), explained on {setup['images']} held-out "
        f"{setup['image_size']} x {setup['image_size']} images whose boxes and masks are known. "
        f"Every method registered in `tfg.METHODS` explains the model's top class; "
        f"`{BASELINE}` is a centred Gaussian map (sigma = {setup['sigma']} of the side), the same "
        "for every image: a baseline that looks at nothing.",
        "",
        f"Each cell is the mean over the {setup['images']} images and its 95 % confidence "
        "interval over images (percentile bootstrap, 10 000 resamples, for means; Wilson score "
        "interval for proportions). ↓ lower is better, ↑ higher is better. Seed "
        f"{setup['seed']}; {env['date']}, tf_gradcam {env['tf_gradcam']}, TensorFlow "
        f"{env['tensorflow']}, Keras {env['keras']}, {env['cpu_cores']} CPU cores; the whole "
        f"run took {setup['seconds'] / 60:.1f} min.",
        "",
        "## Localization",
        "",
        "Pointing game: the map's maximum within 15 px of the object mask. Box IoU: the box "
        "around the largest region above 15 % of the map's maximum (the Grad-CAM paper's "
        "rule) against the object's box; loc. acc. counts IoU ≥ 0.5. Mask IoU: every pixel "
        "above 15 % of the maximum against the object mask.",
        "",
        section(LOCALIZATION),
        "",
        "## Faithfulness",
        "",
        f"Deletion / insertion: RISE's curves ({setup['options']['deletion']['steps']} steps; "
        "deletion to 0, insertion from a blurred copy). Average drop and increase in "
        "confidence: Grad-CAM++'s, on `image * map`. ROAD (Rong et al., ICML 2022): the "
        "probability after the most (MoRF) or least (LeRF) relevant "
        f"{', '.join(f'{int(100 * f)}' for f in setup['road_fractions'])} % of the pixels are "
        "filled by noisy linear imputation (noise 0.01), averaged over those fractions; "
        "(LeRF-MoRF)/2 is pytorch-grad-cam's combined score. MuFidelity (Bhatt et al., IJCAI "
        f"2020): Spearman's correlation, over {setup['options']['mu_fidelity']['samples']} "
        "random subsets of a 9 x 9 grid, between the map's mass on a subset and the drop it "
        "causes.",
        "",
        section(FAITHFULNESS),
        "",
        "ROAD per fraction removed (mean target probability over images):",
        "",
        _road_table(data),
        "",
        _versus_text(data, fmt),
        "",
        _identical_text(table, methods),
        "",
        "## Concision",
        "",
        "Gini index (sparseness, higher is more concentrated) and entropy (complexity, lower "
        f"is simpler; at most ln {setup['image_size'] ** 2} = "
        f"{np.log(setup['image_size'] ** 2):.2f}) of the maps.",
        "",
        section(CONCISION),
        "",
        "## Sanity checks",
        "",
        "Adebayo et al. (NeurIPS 2018): each layer of a copy of the model re-initialised from "
        "the top down (cascading; the model itself is never touched), then the maps compared "
        "with the trained model's. The table gives the similarity once **every** layer is "
        "random; a map that explains the model should have **low** similarity. HOG Spearman "
        "compares the maps' histograms of oriented gradients.",
        "",
        section(SANITY, [m for m in methods if m != BASELINE]),
        "",
        "Cascading randomisation, mean Spearman correlation with the trained model's map after "
        "randomising the layers down to (and including) each one:",
        "",
        _cascading_table(data),
        "",
        _label_text(data),
        "",
        "## Orderings the papers report",
        "",
        "Each line compares two methods on the same images: the mean per-image difference and "
        "its 95 % paired-bootstrap interval. \"Reproduced\" needs the interval to exclude 0 in "
        "the papers' direction.",
        "",
    ]
    for c in data["comparisons"]:
        lines.append("- " + _claim(c, fmt))
    lines += [
        "",
        "What differs from the papers: they used VGG-16 trained on ImageNet (Grad-CAM++: the "
        "ImageNet validation set; Score-CAM: 2 000 of its images), we use a 4-layer CNN on "
        "synthetic shapes; they multiplied the map with the image in pixel space before "
        "preprocessing, we do it in the model's input space (here the same: `[0, 1]` pixels); "
        "Score-CAM's own protocol kept only the top pixels of the map. So our table can only "
        "say whether an ordering holds on this model, not reproduce the published values.",
    ]
    return "\n".join(lines) + "\n"


def _claim(c: dict, fmt) -> str:
    name = NAMES.get(c["metric"], c["metric"])
    a, b = c["a"], c["b"]
    d, lo, hi = (np.nan if c[k] is None else c[k] for k in ("diff", "ci_low", "ci_high"))
    want_lower = c["direction"] == "lower"
    ref = max(abs(d), abs(lo), abs(hi)) if np.isfinite(d) else 0.0
    interval = f"{fmt(d, ref)} [{fmt(lo, ref)}, {fmt(hi, ref)}]"
    paper = c["finding"]
    if not np.isfinite(d):
        return f"**Not measurable**: {paper}; no image has both values."
    if (hi < 0) if want_lower else (lo > 0):
        verdict = "**Reproduced**"
    elif (d < 0) if want_lower else (d > 0):
        verdict = "**Same direction, not significant**"
    elif d == 0 and lo == hi == 0:
        verdict = "**Not reproduced** (no difference at all)"
    else:
        verdict = "**Not reproduced**"
    return (f"{verdict}: {paper}. Here, {name} of {a} minus {b}: {interval} "
            f"({c['n']} images).")


def _versus_text(data: dict, fmt) -> str:
    versus = data.get("versus_baseline")
    if not versus:
        return ""
    rows = [r for r, _ in AGAINST_BASELINE]
    lines = [f"Against the `{BASELINE}` baseline, on the same images: **better** when the "
             "95 % paired-bootstrap interval of the per-image difference excludes 0 in the "
             "metric's better direction, **worse** when it excludes 0 the other way, = "
             "otherwise; the mean difference (method minus baseline) in brackets.", "",
             "| method | " + " | ".join(NAMES.get(r, r) for r in rows) + " |",
             "|---" * (len(rows) + 1) + "|"]
    counts = {}
    for m, by in versus.items():
        cells = []
        for r in rows:
            c = by[r]
            d, lo, hi = (np.nan if c[k] is None else c[k] for k in ("diff", "ci_low", "ci_high"))
            if not np.isfinite(d):
                cells.append("n/a")
                continue
            good = (hi < 0) if c["better"] == "lower" else (lo > 0)
            bad = (lo > 0) if c["better"] == "lower" else (hi < 0)
            word = "**better**" if good else "**worse**" if bad else "="
            counts.setdefault(r, {"better": 0, "worse": 0, "same": 0})[
                "better" if good else "worse" if bad else "same"] += 1
            cells.append(f"{word} ({fmt(d)})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    summary = []
    for r in rows:
        c = counts.get(r)
        if c:
            summary.append(f"{NAMES.get(r, r)}: {c['better']} of {sum(c.values())} methods "
                           f"better, {c['worse']} worse")
    return "\n".join(lines) + "\n\nIn short: " + "; ".join(summary) + "."


def _identical_text(table: dict, methods: list) -> str:
    """Which methods have the same numbers in every row (computed from the table)."""
    signature: dict = {}
    for m in methods:
        keep = table["method"] == m
        key = tuple(np.round(np.concatenate([table[k][keep] for k in ("mean", "ci_low",
                                                                      "ci_high")]), 3))
        signature.setdefault(key, []).append(m)
    groups = [g for g in signature.values() if len(g) > 1]
    if not groups:
        return ""
    names = "; ".join(", ".join(f"`{m}`" for m in g) for g in groups)
    return (f"Methods whose numbers agree to 3 decimals in every row of every table: {names}. "
            "On this "
            "architecture (`last_conv` -> global average pooling -> dense) their channel weights "
            "are proportional to one another, and the maps are divided by their maximum.")


def _road_table(data: dict) -> str:
    fractions = data["setup"]["road_fractions"]
    head = ("| method | " + " | ".join(f"MoRF {int(100 * f)} %" for f in fractions) + " | "
            + " | ".join(f"LeRF {int(100 * f)} %" for f in fractions) + " |")
    lines = [head, "|---" * (2 * len(fractions) + 1) + "|"]
    for m in data["setup"]["methods"]:
        r = data["road"][m]
        lines.append(f"| {m} | " + " | ".join(f"{v:.3f}" for v in r["morf"] + r["lerf"]) + " |")
    return "\n".join(lines)


def _cascading_table(data: dict) -> str:
    cascading = data["cascading"]
    if not cascading:
        return ""
    states = next(iter(cascading.values()))["states"]
    lines = ["| method | " + " | ".join(states) + " |", "|---" * (len(states) + 1) + "|"]
    for m, c in cascading.items():
        lines.append(f"| {m} | " + " | ".join("n/a" if v is None else f"{v:.2f}"
                                              for v in c["spearman"]) + " |")
    return "\n".join(lines)


def _label_text(data: dict) -> str:
    labels = data["label_randomization"]
    acc = labels.get("train_accuracy")
    rows = ["| method | Spearman | SSIM | HOG Spearman |", "|---|---|---|---|"]
    for m, v in labels["methods"].items():
        rows.append(f"| {m} | " + " | ".join("n/a" if v[k] is None else f"{v[k]:.2f}"
                                             for k in ("spearman", "ssim", "hog")) + " |")
    fitted = f" (it fits {acc:.2f} of its permuted training labels)" if acc is not None else ""
    return ("Data randomisation: a second network, same recipe, trained on permuted labels"
            f"{fitted}; mean similarity of its maps with the trained model's, for the same "
            "classes:\n\n" + "\n".join(rows))


def _plain(value):
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.str_):
        return str(value)
    return value


def _nanmean(values: np.ndarray):
    finite = np.isfinite(values)
    return float(values[finite].mean()) if finite.any() else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true",
                        help="only re-render the doc from the JSON")
    parser.add_argument("--images", type=int, default=48, help="held-out images evaluated")
    parser.add_argument("--train", type=int, default=3000, help="training images")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.render:
        with open(JSON) as f:
            data = json.load(f)
    else:
        data = measure(args)
    # NaN means and intervals are stored as null; the table needs floats back
    for row in data["rows"]:
        for k in ("mean", "ci_low", "ci_high"):
            row[k] = np.nan if row[k] is None else row[k]
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(render(data))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
