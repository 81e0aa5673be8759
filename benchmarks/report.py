"""Render ``docs/benchmarks.md`` and the README's speed block from ``benchmarks/results/*.json``.

    python benchmarks/report.py            # rewrite docs/benchmarks.md and the README block
    python benchmarks/report.py --check    # exit 1 if either differs from what the records give

Every figure in those documents comes from a record written by a benchmark script through
``benchmarks/_record.py``, and each table says which record (file, script, date, versions,
machine, load) it comes from; nothing there is typed by hand. ``*.quick.json`` records (the
scripts' ``--quick`` smoke tests) are ignored. In ``README.md`` only the text between the
``<!-- benchmarks:begin ... -->`` and ``<!-- benchmarks:end -->`` markers is written.
``tests/test_benchmark_report.py`` checks that the committed documents are what this script
renders from the committed records. Plain Python: no TensorFlow needed.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import sys
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
README = os.path.join(ROOT, "README.md")
BEGIN = re.compile(r"<!-- benchmarks:begin[^>]*-->")
END = "<!-- benchmarks:end -->"

Rec = dict[str, Any]
Rows = list[dict[str, Any]]

#: How each benchmark's record is made (the command shown under its table).
COMMANDS = {
    "gradcam": "python benchmarks/bench_methods.py --parts gradcam",
    "methods": "python benchmarks/bench_methods.py --parts methods",
    "topk": "python benchmarks/bench_methods.py --parts topk",
    "aug_smooth": "python benchmarks/bench_methods.py --parts aug",
    "max_channels": "python benchmarks/bench_methods.py --parts maxchannels",
    "vit": "python benchmarks/bench_vit.py",
    "callback": "python benchmarks/bench_callback.py",
    "metrics": "python benchmarks/bench_metrics.py",
}
#: Records another script renders into its own document: only linked from here.
OWN_DOCS = {"faithfulness": ("faithfulness.md", "python benchmarks/faithfulness.py")}


# --------------------------------------------------------------------------- formatting
def num(value: Any, digits: int = 3) -> str:
    """``value`` for a table: ``digits`` significant figures (never in e-notation), ints and
    strings as they are, ``None`` and NaN as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value == 0:
            return "0"
        decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))
        return f"{value:.{decimals}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(num(v, digits) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {num(v, digits)}" for k, v in value.items())
    return str(value)


def pct(value: float | None) -> str:
    return "" if value is None else f"{num(100 * value, 2)} %"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def per_image(ms: float | None, batch: int) -> float | None:
    return None if ms is None else ms / batch


def source_line(name: str, rec: Rec, link: str) -> list[str]:
    """Where a table's figures come from: the record, its command, date, versions, machine."""
    env, setup = rec.get("environment", {}), dict(rec.get("setup", {}))
    load = setup.pop("machine_load", None) or {}
    setup.pop("script", None)
    setup.pop("part", None)
    machine = ", ".join(x for x in [
        f"tf_gradcam {env.get('tf_gradcam', '?')}", f"TensorFlow {env.get('tensorflow', '?')}",
        f"Keras {env.get('keras', '?')}", f"NumPy {env.get('numpy', '?')}",
        f"Python {env.get('python', '?')}", str(env.get("machine", "?")),
        f"{env.get('cpu_cores', '?')} CPU cores", "devices " + num(env.get("devices", []))])
    text = [f"Record [`{name}.json`]({link}{name}.json), written by "
            f"`{COMMANDS.get(name, '?')}` on {env.get('date', '?')}: {machine}."]
    if load:
        text.append(f"Load average (1 min; it counts the benchmark itself) "
                    f"{num(_first(load.get('start')))} at the start, "
                    f"{num(_first(load.get('end')))} at the end, at most "
                    f"{num(load.get('max_1min'))}.")
    if "seconds" in rec:
        text.append(f"The run took {num(float(rec['seconds']), 3)} s.")
    if setup:
        text.append("Setup: " + "; ".join(f"{k} {'None' if v is None else num(v)}"
                                          for k, v in setup.items()) + ".")
    return ["*" + " ".join(text) + "*"]


def _first(values: Any) -> Any:
    return values[0] if isinstance(values, list) and values else None


def rows_of(rec: Rec | None) -> Rows:
    return list(rec.get("rows", [])) if rec else []


def generic_table(rows: Rows) -> list[str]:
    """Every field of the rows, in first-seen order, one column each."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return table([f"`{k}`" for k in keys], [[num(row.get(k)) for k in keys] for row in rows])


# --------------------------------------------------------------------------- sections
def section_gradcam(rec: Rec) -> list[str]:
    rows = rows_of(rec)
    out = ["## Grad-CAM against inference and the keras-io recipe", "",
           "Grad-CAM at the last conv layer; `ratio` = Grad-CAM time / compiled inference time "
           "on the same batch (same XLA setting). The keras-io recipe (eager sub-model, eager "
           "tape, a NumPy loop per image) is timed with XLA off.", ""]
    out += table(
        ["model", "layer", "batch", "XLA", "inference ms/image", "Grad-CAM ms/image",
         "Grad-CAM / inference", "keras-io recipe / inference"],
        [[r["model"], f"`{r['layer']}`", num(r["batch"]), num(bool(r["xla"])),
          num(per_image(r["inference_ms"], r["batch"])), num(per_image(r["gradcam_ms"],
                                                                       r["batch"])),
          f"**{num(r['ratio'])}**", num(r.get("keras_io_ratio"))] for r in rows])
    xla = []
    for model in dict.fromkeys(r["model"] for r in rows):
        pick = {bool(r["xla"]): r for r in rows if r["model"] == model
                and r["batch"] == max(x["batch"] for x in rows if x["model"] == model)}
        if True in pick and False in pick:
            xla.append(f"{model} {num(pick[True]['inference_ms'] / pick[False]['inference_ms'])}x"
                       f" (batch {pick[True]['batch']})")
    out += ["", "Grad-CAM's backward pass starts at the score and stops at the layer (only the "
                "layer's output is watched): for a last conv layer, a pooling and a dense layer, "
                "so the ratio stays near 1."]
    if xla:
        out[-1] += (" XLA's inference time against XLA off, in this record: "
                    + "; ".join(xla) + " (on CPU XLA can be slower; the ratio compares like "
                    "with like).")
    return out


def section_vit(rec: Rec) -> list[str]:
    rows = rows_of(rec)
    return ["## Grad-CAM on a vision transformer", "",
            f"{rec.get('setup', {}).get('model', 'ViT')}, explained at "
            f"`{rec.get('setup', {}).get('target', '?')}` (`layer=None`).", ""] + table(
        ["batch", "inference ms/image", "Grad-CAM ms/image", "Grad-CAM / inference"],
        [[num(r["batch"]), num(per_image(r["inference_ms"], r["batch"])),
          num(per_image(r["gradcam_ms"], r["batch"])), f"**{num(r['ratio'])}**"] for r in rows])


def section_methods(rec: Rec) -> list[str]:
    rows = rows_of(rec)
    models = list(dict.fromkeys(r["model"] for r in rows))
    out = ["## Every method", "",
           "Each method at its default layer (`layer=None`), XLA off; time / compiled inference "
           "on the same batch. The Score-CAM family runs at batch 1 (it scores one masked "
           "forward pass per channel and copy).", ""]
    batch = rec.get("setup", {}).get("batch")
    cells: dict[str, dict[str, str]] = {}
    for r in rows:
        opts = f" ({r['options']})" if r.get("options") else ""
        cells.setdefault(f"`{r['cls']}`{opts}", {})[r["model"]] = num(r["ratio"]) + (
            "" if r["batch"] == batch else f" (batch {r['batch']})")
    out += table(["method"] + [f"{m}, batch {batch}" for m in models],
                 [[m] + [c.get(model, "") for model in models] for m, c in cells.items()])
    layers: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        layer = f"`{r['layer']}`" if r.get("layer") else "the input"
        layers.setdefault(r["model"], {}).setdefault(layer, []).append(f"`{r['cls']}`")
    described = []
    for model, by_layer in layers.items():
        common = max(by_layer, key=lambda k: len(by_layer[k]))  # most methods' layer
        described.append(f"{model}: {common}" + "".join(
            f", {layer} ({', '.join(users)})" for layer, users in by_layer.items()
            if layer != common))
    out += ["", "The default layers: " + "; ".join(described) + "."]
    floors = [r for r in rows if r.get("floor_ratio") is not None]
    if floors:
        out += ["", "### Methods against their floor", "",
                "The methods that run many forward passes, against those passes: the Score-CAM "
                "family at batch 1 (`passes` = channels scored x copies per channel, batched "
                "`chunk` at a time in `chunks` calls; floor = chunks x compiled inference of one "
                "chunk; also against the same passes one image at a time), Smooth Grad-CAM++ "
                "(all its noisy copies and the clean batch in one batch; floor = inference of "
                "those rows in one call).", ""]
        out += table(
            ["model", "method", "options", "batch", "passes", "chunk", "time ms", "floor ms",
             "time / floor", "time / (passes at batch 1)", "time / inference"],
            [[r["model"], f"`{r['cls']}`", r.get("options", ""), num(r["batch"]),
              num(r.get("passes")), num(r.get("chunk")), num(r["ms"]), num(r.get("floor_ms")),
              f"**{num(r['floor_ratio'])}**", num(r.get("floor_one_ratio")), num(r["ratio"])]
             for r in floors])
    return out


def section_topk(rec: Rec) -> list[str]:
    rows = rows_of(rec)
    out = ["## Several classes at once (`top_k`)", "",
           "Grad-CAM explaining each image's `k` highest classes in one call, against one "
           "class (the top one) on the same batch. Goal: at most 2x one class.", ""]
    out += table(["model", "layer", "batch", "k", "one class / inference", "top-k / inference",
                  "top-k / one class", "per class / one class"],
                 [[r["model"], f"`{r['layer']}`", num(r["batch"]), num(r["k"]),
                   num(r["one_ratio"]), num(r["topk_ratio"]), f"**{num(r['ratio_to_one'])}**",
                   num(r["per_class"])] for r in rows])
    if rows:
        worst = max(r["ratio_to_one"] for r in rows)
        out += ["", f"Worst case here {num(worst)}x one class: the goal is "
                    f"{'met' if worst <= 2 else 'not met'}."]
    return out


def section_aug(rec: Rec) -> list[str]:
    rows = rows_of(rec)
    out = ["## `aug_smooth`", "",
           "`aug_smooth=True` explains each image as `copies` augmented copies (flips x "
           "intensity factors) in one compiled step. Its floor is one forward-backward pass of "
           "all the copies: Grad-CAM on a batch `copies` times larger, in one step.", ""]
    out += table(["model", "layer", "batch", "copies", "Grad-CAM / inference",
                  "aug_smooth / inference", "aug_smooth / Grad-CAM", "floor / inference",
                  "aug_smooth / floor"],
                 [[r["model"], f"`{r['layer']}`", num(r["batch"]), num(r["copies"]),
                   num(r["gradcam_ms"] / r["inference_ms"]), num(r["ratio"]),
                   num(r["ratio_to_gradcam"]), num(r["floor_ms"] / r["inference_ms"]),
                   f"**{num(r['ratio_to_floor'])}**"] for r in rows])
    return out


def section_max_channels(rec: Rec) -> list[str]:
    rows = rows_of(rec)
    out = ["## Score-CAM with `max_channels`", "",
           "Score-CAM scoring only each image's `max_channels` channels of highest spatial "
           "deviation, against exact Score-CAM (the empty `max_channels`): time per image, and "
           "the Pearson correlation of each image's heatmap with the exact one (mean and "
           "minimum over the images). floor = the call's chunks of masked forward passes x "
           "compiled inference of one chunk, per image.", ""]
    out += table(["model", "layer", "max_channels", "channels", "passes per image",
                  "s per image", "speed-up over exact", "time / floor", "Pearson mean",
                  "Pearson min"],
                 [[r["model"], f"`{r['layer']}`", num(r["max_channels"]), num(r["channels"]),
                   num(r["passes"]), num(r["ms_per_image"] / 1e3), num(r["speedup"]),
                   num(r["floor_ratio"]), f"**{num(r['pearson_mean'])}**",
                   num(r["pearson_min"])] for r in rows])
    return out


def section_callback(rec: Rec) -> list[str]:
    rows = rows_of(rec)
    out = ["## The training callback", "",
           "`GradCAMCallback` logging the probe images to TensorBoard every epoch. `share` is "
           "the callback's own time per logged epoch (explain, render, encode, write) over the "
           "median epoch without it, the figure to trust on a shared machine; `fit overhead` "
           "(median epoch with / without - 1) carries the other jobs' noise. Goal: at most "
           "5 %.", ""]
    out += table(["model", "epoch s", "epoch with callback s", "fit overhead",
                  "callback s per epoch", "share of epoch", "traces"],
                 [[r["model"], num(r["epoch_s"]), num(r["epoch_callback_s"]),
                   pct(r["overhead"]), num(r["callback_s"]), f"**{pct(r['share'])}**",
                   num(r["traces"])] for r in rows])
    return out


def section_metrics(rec: Rec) -> list[str]:
    return ["## Metrics", "", "Every field of the record's rows, as recorded.", ""] + \
        generic_table(rows_of(rec))


def section_generic(name: str) -> Callable[[Rec], list[str]]:
    return lambda rec: [f"## `{name}`", "", "Every field of the record's rows, as recorded.",
                        ""] + generic_table(rows_of(rec))


SECTIONS: dict[str, Callable[[Rec], list[str]]] = {
    "gradcam": section_gradcam, "vit": section_vit, "methods": section_methods,
    "topk": section_topk, "aug_smooth": section_aug, "max_channels": section_max_channels,
    "callback": section_callback, "metrics": section_metrics,
}


# --------------------------------------------------------------------------- documents
def load(results: str) -> dict[str, Rec]:
    """Every ``<name>.json`` record in ``results`` (not ``*.quick.json``), by name, sorted."""
    records = {}
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        if path.endswith(".quick.json"):
            continue
        with open(path) as f:
            records[os.path.basename(path)[: -len(".json")]] = json.load(f)
    return records


def render_docs(records: dict[str, Rec]) -> str:
    out = ["# Benchmarks", "",
           "*Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; do not "
           "edit by hand (`tests/test_benchmark_report.py` fails if this file is not what the "
           "records give).*", "",
           "The speed figures are ratios measured in one process: a method's time for one call "
           "on a batch, divided by a compiled inference call (`tf.function(model)`) on the same "
           "batch, or by the method's floor (the forward passes it cannot avoid). The calls "
           "are interleaved and the median of the repeats is kept. Ratios cancel most of the "
           "noise of a shared machine; seconds would not, and the seconds below are only "
           "there to show the scale. An explainer call includes the input checks, the forward "
           "and backward pass, the weights, the map, the in-graph upsampling and scaling, and "
           "the copy back to NumPy. Under each table: the record it is rendered from, with the "
           "date, versions, machine and its load average while it ran.", "",
           "Reproduce (each writes its record; `--quick` is a smoke test that writes "
           "`<name>.quick.json`, ignored here), then render:", "", "```bash"]
    out += [
        "python benchmarks/bench_methods.py     # gradcam, methods, topk, aug, maxchannels",
        "python benchmarks/bench_vit.py",
        "python benchmarks/bench_callback.py",
        *(["python benchmarks/bench_metrics.py"] if "metrics" in records else []),
        "python benchmarks/report.py           # this file and the README's speed block",
    ]
    out += ["```"]
    order = list(SECTIONS) + sorted(set(records) - set(SECTIONS) - set(OWN_DOCS))
    for name in order:
        if name not in records:
            continue
        render = SECTIONS.get(name) or section_generic(name)
        out += [""] + render(records[name]) + [""] + source_line(name, records[name], "../"
                                                                 "benchmarks/results/")
    elsewhere = [name for name in OWN_DOCS if name in records]
    if elsewhere:
        out += ["", "## Rendered elsewhere", ""]
        out += [f"- [`{n}.json`](../benchmarks/results/{n}.json): "
                f"[{OWN_DOCS[n][0]}]({OWN_DOCS[n][0]}), by `{OWN_DOCS[n][1]}`."
                for n in elsewhere]
    return "\n".join(out) + "\n"


def _row(rows: Rows, **match: Any) -> dict | None:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def render_readme_block(records: dict[str, Rec]) -> str:
    """The README's speed paragraph: the headline ratios, each with the record it comes from."""
    def ref(name: str) -> str:
        return f"[`{name}.json`](benchmarks/results/{name}.json)"

    items = []
    rows = rows_of(records.get("gradcam"))
    if rows:
        batch = max(r["batch"] for r in rows)
        picks = [r for r in rows if r["batch"] == batch and not r["xla"]]
        if picks:
            costs = " and ".join(f"**{num(r['ratio'], 2)}x** ({r['model']})" for r in picks)
            text = (f"Grad-CAM costs {costs} a compiled inference call on the same batch of "
                    f"{batch} (CPU, XLA off)")
            peers = [r for r in picks if r.get("keras_io_ratio") is not None]
            if peers:
                text += ("; the keras-io recipe costs " + " and ".join(
                    f"{num(r['keras_io_ratio'], 2)}x" for r in peers))
            items.append(text + f" ({ref('gradcam')}).")
    rows = rows_of(records.get("vit"))
    if rows:
        r = max(rows, key=lambda r: r["batch"])
        items.append(f"On a ViT-S/16: **{num(r['ratio'], 2)}x** at batch {r['batch']} "
                     f"({ref('vit')}).")
    rows = rows_of(records.get("topk"))
    if rows:
        r = max(rows, key=lambda r: r["batch"])
        items.append(f"Explaining the top {r['k']} classes at once costs "
                     f"**{num(r['ratio_to_one'], 2)}x** one class ({r['model']}, batch "
                     f"{r['batch']}; {ref('topk')}).")
    rows = rows_of(records.get("aug_smooth"))
    if rows:
        items.append("`aug_smooth` (" + str(rows[0]["copies"]) + " copies per image) costs "
                     + " and ".join(f"**{num(r['ratio_to_floor'], 2)}x** ({r['model']})"
                                    for r in rows)
                     + f" its floor, one forward-backward pass of all the copies "
                     f"({ref('aug_smooth')}).")
    rows = [r for r in rows_of(records.get("methods"))
            if r.get("cls") == "ScoreCAM" and not r.get("options") and r.get("floor_ratio")]
    if rows:
        items.append("Score-CAM costs " + " and ".join(
            f"{num(r['floor_ratio'], 2)}x ({r['model']}, {r['passes']} channels)" for r in rows)
            + f" its floor, one masked forward pass per channel ({ref('methods')}).")
    rows = [r for r in rows_of(records.get("max_channels")) if r.get("max_channels")]
    if rows:
        r = rows[0]
        items.append(f"Score-CAM with `max_channels={r['max_channels']}` runs "
                     f"{num(r['speedup'], 2)}x faster than exact Score-CAM on {r['model']}, its "
                     f"maps correlating {num(r['pearson_mean'], 2)} (Pearson, mean) with the "
                     f"exact ones ({ref('max_channels')}).")
    rows = rows_of(records.get("callback"))
    if rows:
        items.append("The training callback's own time is " + " and ".join(
            f"**{pct(r['share'])}** of an epoch on the {r['model'].split(',')[0]}"
            for r in rows) + f" ({ref('callback')}).")
    rows = rows_of(records.get("metrics"))
    if rows:
        items.append(_metrics_headline(rows) + f" ({ref('metrics')}).")
    if not items:
        return "No benchmark records yet: run the scripts in `benchmarks/`, then " \
            "`python benchmarks/report.py`.\n"
    env = next(iter(records.values())).get("environment", {})
    head = (f"Ratios measured in one process on {env.get('cpu_cores', '?')} shared CPU cores "
            f"(TensorFlow {env.get('tensorflow', '?')}, Keras {env.get('keras', '?')}); "
            "every figure with its setup, the machine's load and the date it was measured: "
            "[docs/benchmarks.md](docs/benchmarks.md).")
    return head + "\n\n" + "\n".join(f"- {item}" for item in items) + "\n"


def _metrics_headline(rows: Rows) -> str:
    """A line for the metrics record, from whatever numeric fields its rows have."""
    for key, what in (("overhead", "times their forward passes (`overhead`)"),
                      ("ratio", "times a forward pass per image (`ratio`)")):
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))
                  and not isinstance(r.get(key), bool) and not math.isnan(r[key])]
        if values:
            return (f"The {len(rows)} metric timings cost {num(min(values), 2)} to "
                    f"{num(max(values), 2)} {what}")
    return f"Metrics: {len(rows)} rows"


def replace_block(readme: str, block: str) -> str:
    begin = BEGIN.search(readme)
    end = readme.find(END, begin.end()) if begin else -1
    if begin is None or end < 0:
        raise SystemExit("README has no '<!-- benchmarks:begin ... -->' ... "
                         "'<!-- benchmarks:end -->' markers.")
    return readme[: begin.end()] + "\n" + block + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=RESULTS, help="directory of the records")
    parser.add_argument("--docs", default=DOCS, help="the Markdown file to (re)write")
    parser.add_argument("--readme", default=README, help="the README whose block to rewrite")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a document is not what the records give")
    args = parser.parse_args(argv)
    records = load(args.results)
    with open(args.readme) as f:
        readme = f.read()
    wanted = {args.docs: render_docs(records),
              args.readme: replace_block(readme, render_readme_block(records))}
    stale = []
    for path, text in wanted.items():
        current = open(path).read() if os.path.exists(path) else None
        if current != text:
            stale.append(path)
            if not args.check:
                with open(path, "w") as f:
                    f.write(text)
    if args.check:
        for path in stale:
            print(f"{path} is not what benchmarks/report.py renders from {args.results}: run "
                  "python benchmarks/report.py", file=sys.stderr)
        return 1 if stale else 0
    print(f"rendered {len(records)} records into " + ", ".join(wanted) +
          ("" if stale else " (unchanged)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
