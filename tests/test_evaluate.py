"""tfg.evaluate: the table's shape, its numbers against the metric functions and its intervals;
the data forms it reads; tf-gradcam evaluate end to end on a small saved model."""

import csv
import os

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg
from tf_gradcam import cli, metrics
from tf_gradcam.evaluation import METRICS

COLUMNS = ["method", "metric", "mean", "ci_low", "ci_high", "n", "nan", "interval", "better"]
FAST = {"deletion": {"steps": 8}, "insertion": {"steps": 8}, "road": {"fractions": (0.3, 0.7)},
        "mu_fidelity": {"samples": 8}, "max_sensitivity": {"samples": 2}}


@pytest.fixture(scope="module")
def setup():
    from tf_gradcam.data import make_shapes, small_cnn

    keras.utils.set_random_seed(7)
    model = small_cnn((32, 32, 3), width=8)
    data = make_shapes(8, size=32, seed=5)
    yy, xx = np.mgrid[0:32, 0:32]
    centre = np.exp(-((yy - 15.5) ** 2 + (xx - 15.5) ** 2) / (2 * 8.0**2)).astype(np.float32)
    return model, data, np.repeat(centre[None] / centre.max(), 8, axis=0)


def test_table_shape_numbers_and_intervals(setup):
    model, data, centre = setup
    chosen = ["pointing_game", "box_iou", "deletion", "road", "sparseness", "average_drop",
              "increase_in_confidence"]
    table = tfg.evaluate(model, data, ["gradcam", "gradcam++", ("centre", centre)], chosen,
                         metric_options=FAST, verbose=0)
    assert list(table) == COLUMNS
    rows = ["pointing_game", "box_iou", "deletion_auc", "road_morf", "road_lerf",
            "road_combined", "sparseness", "average_drop", "increase_in_confidence"]
    assert list(table["method"]) == ["gradcam"] * 9 + ["gradcam++"] * 9 + ["centre"] * 9
    assert list(table["metric"]) == rows * 3
    assert all(len(v) == 27 for v in table.values())
    assert table["mean"].dtype == np.float64 and table["n"].dtype == np.int64
    np.testing.assert_array_equal(table["n"], 8)
    assert np.all(table["ci_low"] <= table["mean"]) and np.all(table["mean"] <= table["ci_high"])
    proportions = {"pointing_game", "increase_in_confidence"}
    assert [i == "wilson" for i in table["interval"]] == [m in proportions for m in rows * 3]
    assert dict(zip(table["metric"], table["better"]))["deletion_auc"] == "lower"

    # every number is the metric function's, and its interval the stats module's
    grad = tfg.GradCAM(model)(data.images)
    at = {(m, r): i for i, (m, r) in enumerate(zip(table["method"], table["metric"]))}
    hits = metrics.pointing_hits(grad, data.masks)
    i = at["gradcam", "pointing_game"]
    assert (table["mean"][i], table["ci_low"][i], table["ci_high"][i]) == metrics.wilson_ci(hits)
    gini = metrics.sparseness(grad)
    i = at["gradcam", "sparseness"]
    assert (table["mean"][i], table["ci_low"][i], table["ci_high"][i]) == pytest.approx(
        metrics.bootstrap_ci(gini, seed=0))
    i = at["centre", "deletion_auc"]
    assert table["mean"][i] == pytest.approx(
        metrics.deletion_auc(model, data.images, centre, grad.targets, steps=8), rel=1e-9)
    i = at["gradcam++", "road_combined"]
    plus = tfg.GradCAMPlusPlus(model)(data.images, grad.targets)
    road = metrics.road(model, data.images, plus, fractions=(0.3, 0.7), labels=data.labels)
    assert table["mean"][i] == pytest.approx(road.combined, rel=1e-6)
    i = at["centre", "increase_in_confidence"]  # a proportion shown in percent
    assert table["mean"][i] == pytest.approx(
        metrics.increase_in_confidence(model, data.images, centre, grad.targets))


def test_default_metrics_data_forms_and_files(setup, tmp_path):
    model, data, _ = setup
    result = tfg.evaluation.run(model, data.subset(slice(0, 3)), ["gradcam"], metric_options=FAST,
                                verbose=0)
    defaults = [name for name, m in METRICS.items() if m.default]
    assert result.metrics == defaults  # ground truth known: localization included
    assert "sanity" not in result.metrics and "max_sensitivity" not in result.metrics
    assert result.per_image["gradcam"]["deletion_auc"].shape == (3,)
    assert result.details["gradcam"]["road"].fractions.tolist() == [0.3, 0.7]
    bare = tfg.evaluation.run(model, data.images[:3], ["gradcam"], metric_options=FAST,
                              verbose=0)
    assert "pointing_game" not in bare.metrics and "deletion" in bare.metrics

    arrays = tfg.evaluate(model, (data.images, data.labels), ["gradcam"], ["sparseness"],
                          verbose=0)
    for ds in (tf.data.Dataset.from_tensor_slices((data.images, data.labels)),
               tf.data.Dataset.from_tensor_slices(data.images).batch(3)):
        np.testing.assert_allclose(
            tfg.evaluate(model, ds, ["gradcam"], ["sparseness"], verbose=0)["mean"],
            arrays["mean"], rtol=1e-6)

    out = tmp_path / "eval"
    table = tfg.evaluate(model, data, ["gradcam", "cam"], ["deletion", "mask_iou"],
                         metric_options=FAST, out_dir=str(out), verbose=0)
    assert sorted(os.listdir(out)) == ["curves.png", "maps.png", "table.csv", "table.md"]
    with open(out / "table.csv") as f:
        lines = list(csv.DictReader(f))
    assert [(r["method"], r["metric"]) for r in lines] == list(zip(table["method"],
                                                                    table["metric"]))
    assert float(lines[0]["mean"]) == table["mean"][0]
    markdown = (out / "table.md").read_text()
    assert "| gradcam |" in markdown and "deletion_auc ↓" in markdown and "bootstrap" in markdown
    assert cv2.imread(str(out / "maps.png")) is not None


def test_explainer_metrics_and_refusals(setup):
    model, data, centre = setup
    table = tfg.evaluate(model, data.subset(slice(0, 3)), ["gradcam", ("centre", centre)],
                         ["max_sensitivity", "sanity"], metric_options=FAST, verbose=0)
    by = dict(zip(zip(table["method"], table["metric"]), table["nan"]))
    assert by["centre", "max_sensitivity"] == 3 and by["centre", "sanity_spearman"] == 3
    assert by["gradcam", "sanity_ssim"] == 0  # SSIM is always defined
    with pytest.raises(ValueError, match="Unknown metric 'nope'"):
        tfg.evaluate(model, data.images, metrics=["nope"], verbose=0)
    with pytest.raises(ValueError, match="needs boxes"):
        tfg.evaluate(model, data.images, metrics=["box_iou"], verbose=0)
    with pytest.raises(ValueError, match="Unknown method"):
        tfg.evaluate(model, data.images, methods=["nope"], verbose=0)
    with pytest.raises(ValueError, match="maps of 'bad'"):
        tfg.evaluate(model, data.images, methods=[("bad", centre[:, :5])], verbose=0)
    with pytest.raises(ValueError, match="needs labels"):
        tfg.evaluate(model, data.images, targets="label", verbose=0)


def test_cli_evaluate_end_to_end(setup, tmp_path, capsys):
    model, data, _ = setup
    path = str(tmp_path / "model.keras")
    model.save(path)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(data.images[:4]):
        cv2.imwrite(str(folder / f"{i}.png"), np.round(img[..., ::-1] * 255).astype(np.uint8))
    out = tmp_path / "out"
    code = cli.main(["evaluate", path, str(folder), "--methods", "gradcam,cam", "--metrics",
                     "deletion", "sparseness", "--out", str(out), "--max-images", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| gradcam |" in printed and "| cam |" in printed and "written:" in printed
    with open(out / "table.csv") as f:
        lines = list(csv.DictReader(f))
    assert [(r["method"], r["metric"], r["n"]) for r in lines] == [
        ("gradcam", "deletion_auc", "3"), ("gradcam", "sparseness", "3"),
        ("cam", "deletion_auc", "3"), ("cam", "sparseness", "3")]
    assert cli.main(["evaluate", path, str(folder / "missing.png")]) == 2
    assert "image not found" in capsys.readouterr().err
    assert cli.main(["evaluate", path, str(folder), "--metrics", "nope"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
    assert cli.main(["evaluate", path, str(folder), "--metrics", "box_iou", "--quiet"]) == 2
    assert "needs boxes" in capsys.readouterr().err
    # The same file listing as `explain`: a quoted glob pattern, and one that matches nothing.
    code = cli.main(["evaluate", path, str(folder / "[01].png"), "--metrics", "sparseness",
                     "--out", str(tmp_path / "glob"), "--quiet"])
    assert code == 0
    with open(tmp_path / "glob" / "table.csv") as f:
        assert [r["n"] for r in csv.DictReader(f)] == ["2"]
    assert cli.main(["evaluate", path, str(folder / "*.jpg")]) == 2
    assert "no file matches" in capsys.readouterr().err
