"""docs/benchmarks.md and the README's speed block are generated from the benchmark records.

``benchmarks/report.py`` renders them from ``benchmarks/results/*.json``; these tests run it on
a small synthetic results directory (no TensorFlow model runs), and check that the committed
documents are exactly what it renders from the committed records, so a hand edit (or a record
committed without re-rendering) fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "report.py")

_spec = importlib.util.spec_from_file_location("benchmarks_report", SCRIPT)
assert _spec is not None and _spec.loader is not None
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

ENV = {"date": "2030-01-02T03:04:05+00:00", "tf_gradcam": "9.9.9", "tensorflow": "2.99.0",
       "keras": "3.99.0", "numpy": "2.0.0", "python": "3.11.0", "machine": "x86_64",
       "cpu_cores": 2, "devices": ["CPU"]}


def record(name: str, rows: list, **setup) -> dict:
    return {"benchmark": name, "environment": ENV,
            "setup": {"machine_load": {"start": [3.5, 3.0, 2.0], "end": [4.25, 3.0, 2.0],
                                       "max_1min": 5.75}, **setup},
            "rows": rows, "seconds": 12.0}


def gradcam_row(model, batch, xla, ratio, peer):
    return dict(model=model, layer="conv", batch=batch, xla=xla, inference_ms=10.0 * batch,
                gradcam_ms=10.0 * batch * ratio, ratio=ratio,
                keras_io_ms=None if peer is None else 10.0 * batch * peer, keras_io_ratio=peer)


def write(directory, name: str, data: dict) -> None:
    with open(os.path.join(directory, name), "w") as f:
        json.dump(data, f)


README = ("# Project\n\nBefore the block.\n\n## Speed\n\n"
          "<!-- benchmarks:begin (generated; do not edit) -->\nA stale hand-typed 9.99x.\n"
          "<!-- benchmarks:end -->\n\nAfter the block.\n")


def test_report_renders_the_records(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    write(results, "gradcam.json", record("gradcam", [
        gradcam_row("NetA", 1, False, 1.0625, 14.5),
        gradcam_row("NetA", 32, False, 1.0234, 5.125),
        gradcam_row("NetA", 32, True, 0.9876, None),
    ], repeats=3, weights=None))
    write(results, "topk.json", record("topk", [dict(
        model="NetA", layer="conv", batch=32, k=5, inference_ms=100.0, one_ms=100.0,
        topk_ms=161.0, ratio_to_one=1.61, per_class=0.322, one_ratio=1.0, topk_ratio=1.61)]))
    # a record the report has no renderer for (metrics comes from another branch): a table of
    # whatever fields its rows have
    write(results, "metrics.json", record("metrics", [
        dict(model="NetA", metric="deletion", seconds_per_image=0.5, ratio=51.5, passes=51,
             overhead=1.0098),
        dict(model="NetA", metric="sparseness", seconds_per_image=0.001, ratio=0.1, passes=0,
             overhead=None)]))
    write(results, "widgets.json", record("widgets", [dict(widget="w1", speed=4.321)]))
    # a quick smoke-test record: never rendered
    write(results, "vit.quick.json", record("vit", [dict(batch=32, inference_ms=1.0,
                                                         gradcam_ms=77.7, ratio=77.7)]))
    readme = tmp_path / "README.md"
    readme.write_text(README)
    docs = tmp_path / "benchmarks.md"
    args = ["--results", str(results), "--docs", str(docs), "--readme", str(readme)]

    done = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = docs.read_text()
    # the Grad-CAM table: per-image times, ratios, the peer's ratio, the setup line
    assert "| NetA | `conv` | 32 | off | 10.0 | 10.2 | **1.02** | 5.12 |" in text
    assert "| NetA | `conv` | 32 | on | 10.0 | 9.88 | **0.988** |  |" in text
    assert "[`gradcam.json`](../benchmarks/results/gradcam.json)" in text
    assert "on 2030-01-02T03:04:05+00:00: tf_gradcam 9.9.9, TensorFlow 2.99.0" in text
    assert "3.50 at the start, 4.25 at the end, at most 5.75" in text
    assert "weights None" in text
    assert "**1.61**" in text and "goal is met" in text
    # generic tables: every field, blanks for None
    assert "| `model` | `metric` | `seconds_per_image` | `ratio` | `passes` | `overhead` |" in text
    assert "| NetA | deletion | 0.500 | 51.5 | 51 | 1.01 |" in text
    assert "| NetA | sparseness | 0.00100 | 0.100 | 0 |  |" in text
    assert "## `widgets`" in text and "| w1 | 4.32 |" in text
    assert "77.7" not in text and "vit.json" not in text

    new = readme.read_text()
    assert new.startswith("# Project\n\nBefore the block.\n\n## Speed\n\n"
                          "<!-- benchmarks:begin (generated; do not edit) -->\n")
    assert new.endswith("<!-- benchmarks:end -->\n\nAfter the block.\n")
    assert "9.99x" not in new
    assert "Grad-CAM costs **1.0x** (NetA) a compiled inference call on the same batch of 32" \
        in new
    assert "the keras-io recipe costs 5.1x" in new
    assert "costs **1.6x** one class (NetA, batch 32" in new
    assert "[`metrics.json`](benchmarks/results/metrics.json)" in new
    assert "77.7" not in new

    # rendering again changes nothing; --check passes, and fails after a hand edit
    assert report.main([*args, "--check"]) == 0
    docs.write_text(text.replace("**1.02**", "**0.90**"))
    assert report.main([*args, "--check"]) == 1
    assert report.main(args) == 0 and docs.read_text() == text


def test_number_format():
    assert [report.num(v) for v in (1234.5, 12.345, 1.2345, 0.012345, 0.0, None, 3, True)] \
        == ["1234", "12.3", "1.23", "0.0123", "0", "", "3", "on"]
    assert report.num(float("nan")) == ""


def test_committed_documents_are_what_the_committed_records_render():
    """A hand edit of docs/benchmarks.md or of the README's speed block fails here; so does a
    record committed without ``python benchmarks/report.py``."""
    assert report.main(["--check"]) == 0, (
        "docs/benchmarks.md or README.md's benchmarks block is not what benchmarks/report.py "
        "renders from benchmarks/results/*.json: run python benchmarks/report.py")
