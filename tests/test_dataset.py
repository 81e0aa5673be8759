"""explain_dataset: equals the explainer on all inputs, streams to disk, runs distributed."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg
from tf_gradcam.scale import load_explanations

L = keras.layers
N = 10


@pytest.fixture(scope="module")
def setup():
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, activation="relu", name="c1")(inp)
    x = L.Conv2D(5, 3, activation="relu", name="last")(x)
    out = L.Dense(3, activation="softmax", name="head")(L.Flatten()(x))
    model = keras.Model(inp, out)
    explainer = tfg.GradCAM(model, "last")
    x = np.random.default_rng(1).random((N, 8, 8, 3), dtype=np.float32)
    y = np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 1])
    return explainer, x, y, explainer(x)


def assert_same(got, want, n=None):
    n = len(want.targets) if n is None else n
    np.testing.assert_allclose(got.heatmaps, want.heatmaps[:n], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.raw, want.raw[:n], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.weights, want.weights[:n], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.scores, want.scores[:n], rtol=1e-5)
    np.testing.assert_array_equal(got.targets, want.targets[:n])
    assert got.targets.dtype == np.int64 and got.heatmaps.dtype == np.float32


def test_equals_explainer_on_all_inputs(setup, capsys):
    explainer, x, _, whole = setup
    assert whole.raw.max() > 0 and len(set(whole.targets)) > 1  # the comparison means something
    res = tfg.explain_dataset(explainer, tf.data.Dataset.from_tensor_slices(x).batch(4), verbose=0)
    assert_same(res, whole)
    assert res.method == whole.method == "gradcam" and res.layer == whole.layer == "last"
    assert not isinstance(res.heatmaps, np.memmap)
    # stopping early: the first two batches only
    part = tfg.explain_dataset(
        explainer, tf.data.Dataset.from_tensor_slices(x).batch(4), steps=2, verbose=0
    )
    assert_same(part, whole, n=8)
    assert capsys.readouterr().out == ""  # verbose=0 is silent
    tfg.explain_dataset(explainer, tf.data.Dataset.from_tensor_slices(x).batch(4), verbose=2)
    assert "3/3" in capsys.readouterr().out  # known cardinality: one line at the end


def test_targets_from_labels_int_and_callable(setup):
    explainer, x, y, _ = setup
    by_label = explainer(x, y)
    assert not np.array_equal(by_label.targets, setup[3].targets)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    assert_same(tfg.explain_dataset(explainer, ds, targets="label", verbose=0), by_label)
    one_hot = tf.data.Dataset.from_tensor_slices((x, np.eye(3)[y], np.ones(N))).batch(4)
    assert_same(tfg.explain_dataset(explainer, one_hot, targets="label", verbose=0), by_label)
    # (x, y) elements with the default targets: the top class, labels ignored
    assert_same(tfg.explain_dataset(explainer, ds, verbose=0), setup[3])
    assert_same(tfg.explain_dataset(explainer, ds, targets=2, verbose=0), explainer(x, 2))
    fn = lambda logits: logits[:, 0] - logits[:, 1]  # noqa: E731
    got = tfg.explain_dataset(explainer, ds, targets=fn, verbose=0)
    want = explainer(x, fn)
    np.testing.assert_allclose(got.raw, want.raw, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got.targets, [-1] * N)


def test_multi_input_dict_elements(rng):
    img = keras.Input((6, 6, 2), name="image")
    meta = keras.Input((3,), name="meta")
    h = L.Conv2D(4, 3, activation="relu", name="conv")(img)
    h = L.Concatenate()([L.Flatten()(h), L.Dense(2)(meta)])
    model = keras.Model([img, meta], L.Dense(3, activation="softmax")(h))
    explainer = tfg.GradCAM(model, "conv")
    xi, xm = rng.random((5, 6, 6, 2), dtype=np.float32), rng.random((5, 3), dtype=np.float32)
    want = explainer([xi, xm])
    ds = tf.data.Dataset.from_tensor_slices(({"meta": xm, "image": xi}, np.zeros(5))).batch(2)
    assert_same(tfg.explain_dataset(explainer, ds, verbose=0), want)


def test_writes_shards_and_reads_back(setup, tmp_path, capsys):
    explainer, x, _, whole = setup
    # filter() hides the cardinality: the progress bar has no total
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4).filter(lambda b: True)
    assert int(ds.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    out = tmp_path / "run"
    res = tfg.explain_dataset(explainer, ds, out_dir=out, verbose=1)
    printed = capsys.readouterr().out
    assert "3/Unknown" in printed and "batch" in printed
    assert isinstance(res.heatmaps, np.memmap)  # read back from disk, not kept in memory
    assert_same(res, whole)
    files = sorted(os.listdir(out))
    assert files == [
        "explanation.json",
        "heatmaps.npy",
        "raw.npy",
        "scores.npy",
        "targets.npy",
        "weights.npy",
    ]
    meta = json.loads((out / "explanation.json").read_text())
    assert meta["complete"] and meta["n"] == N and meta["method"] == "gradcam"
    # plain NumPy files: np.load reads them without this package
    np.testing.assert_allclose(np.load(out / "heatmaps.npy"), whole.heatmaps, rtol=1e-5, atol=1e-6)
    assert_same(load_explanations(out, mmap_mode=None), whole)
    assert np.load(out / "raw.npy", mmap_mode="r").offset % 64 == 0

    with pytest.raises(FileExistsError, match="overwrite=True"):
        tfg.explain_dataset(explainer, ds, out_dir=out, verbose=0)
    again = tfg.explain_dataset(
        explainer, ds, out_dir=out, steps=1, overwrite=True, keep_in_memory=True, verbose=0
    )
    assert not isinstance(again.heatmaps, np.memmap)
    assert_same(again, whole, n=4)
    assert_same(load_explanations(out), whole, n=4)


def test_interrupted_run_leaves_readable_results(setup, tmp_path):
    explainer, x, _, whole = setup
    bad = x.copy()
    bad[5, 0, 0, 0] = np.nan  # in the second batch
    ds = tf.data.Dataset.from_tensor_slices(bad).batch(4)
    with pytest.raises(ValueError, match="NaN"):
        tfg.explain_dataset(explainer, ds, out_dir=tmp_path, verbose=0)
    with pytest.warns(UserWarning, match="did not finish.*4 samples"):
        partial = load_explanations(tmp_path)
    assert_same(partial, whole, n=4)


def test_errors(setup):
    explainer, x, y, _ = setup
    xs = tf.data.Dataset.from_tensor_slices(x).batch(4)
    with pytest.raises(ValueError, match=r"needs \(x, y\)"):
        tfg.explain_dataset(explainer, xs, targets="label", verbose=0)
    with pytest.raises(ValueError, match="empty"):
        tfg.explain_dataset(explainer, xs.take(0), verbose=0)
    with pytest.raises(ValueError, match="infinite.*steps"):
        tfg.explain_dataset(explainer, xs.repeat(), verbose=0)
    assert len(tfg.explain_dataset(explainer, xs.repeat(), steps=4, verbose=0)) == 4 + 4 + 2 + 4
    with pytest.raises(ValueError, match="targets='label'"):
        tfg.explain_dataset(explainer, xs, targets=list(y), verbose=0)
    with pytest.raises(ValueError, match="out_dir"):
        tfg.explain_dataset(explainer, xs, keep_in_memory=False, verbose=0)
    with pytest.raises(ValueError, match="out of range"):
        tfg.explain_dataset(explainer, xs, targets=3, verbose=0)
    out_of_range = tf.data.Dataset.from_tensor_slices((x, y + 1)).batch(4)
    with pytest.raises(ValueError, match="out of range"):
        tfg.explain_dataset(explainer, out_of_range, targets="label", verbose=0)


DISTRIBUTED_SCRIPT = textwrap.dedent("""
    import os, sys, tempfile
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    import tf_gradcam as tfg

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    keras.utils.set_random_seed(2)
    with strategy.scope():
        inp = keras.Input((8, 8, 3))
        h = keras.layers.Conv2D(4, 3, activation="relu")(inp)
        h = keras.layers.Conv2D(5, 3, activation="relu", name="last")(h)
        h = keras.layers.Flatten()(h)
        model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h))
    explainer = tfg.GradCAM(model, "last")
    x = np.random.default_rng(2).random((9, 8, 8, 3), dtype=np.float32)
    y = np.arange(9) % 3

    def same(a, b):
        for f in ("heatmaps", "raw", "weights", "scores"):
            np.testing.assert_allclose(
                getattr(a, f), getattr(b, f), rtol=1e-5, atol=1e-6, err_msg=f)
        np.testing.assert_array_equal(a.targets, b.targets)

    single = explainer(x)
    assert single.raw.max() > 0
    # 9 samples in batches of 4: replicas get 2 + 2, 2 + 2, then 1 + 0 (an empty replica batch)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    with tempfile.TemporaryDirectory() as out:
        dist = tfg.explain_dataset(explainer, ds, strategy=strategy, out_dir=out, verbose=0)
        same(dist, single)
        same(tfg.load_explanations(out), single)
    same(tfg.explain_dataset(explainer, ds, strategy=strategy, targets="label", verbose=0),
         explainer(x, y))
    same(tfg.explain_dataset(explainer, ds, strategy=strategy, verbose=0),
         tfg.explain_dataset(explainer, ds, verbose=0))
    print("DISTRIBUTED_OK", len(dist))
""")


def test_distributed_equals_single_device(tmp_path):
    script = tmp_path / "distributed.py"
    script.write_text(DISTRIBUTED_SCRIPT)
    env = dict(
        os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES=""
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(__file__)),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "DISTRIBUTED_OK 9" in proc.stdout
