"""GradCAMCallback and log_heatmaps: what lands in the event files, PNGs and GIFs, and that
logging neither retraces nor changes training.

One module-scoped run trains a small CNN on generated shapes with every sink on (TensorBoard
event files beside Keras' own TensorBoard callback, PNGs, GIFs); most tests read its output
back. The other runs use a tiny model on 16 x 16 noise and take a second or two each.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap
from collections import defaultdict

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg
from tf_gradcam.data import make_shapes, small_cnn

L = keras.layers

CLASSES = ("circle", "cross")
SIZE = 32
N_PROBES = 12
EPOCHS = 6


# ---------------------------------------------------------------------- reading back
def read_images(directory):
    """``{tag: {step: (png bytes, width, height, plugin name)}}`` of a summary directory."""
    found = defaultdict(dict)
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "images":
                    continue
                vals = value.tensor.string_val
                width, height = int(vals[0]), int(vals[1])
                assert len(vals) == 3, "one image per tag and step"
                found[value.tag][event.step] = (vals[2], width, height)
    return found


def read_scalars(directory):
    found = defaultdict(dict)
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    found[value.tag][event.step] = float(tf.make_ndarray(value.tensor))
    return found


def decode(png):
    return tf.io.decode_png(png).numpy()


# ---------------------------------------------------------------------- models
def tiny_model(classes=3, dropout=True, size=16):
    inp = keras.Input((size, size, 3))
    x = L.Conv2D(6, 3, padding="same", use_bias=False, name="conv")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Activation("relu", name="relu")(x)
    if dropout:
        x = L.Dropout(0.5, name="drop")(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L.Dense(classes, activation="softmax", name="probs")(x))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


def tiny_data(n=32, size=16, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size, 3), dtype=np.float32), rng.integers(0, classes, n)


class Spy(keras.callbacks.Callback):
    """Records what happened after the callback under test (it runs later in the list)."""

    def __init__(self, probes=None, labels=None):
        super().__init__()
        self.epochs_begun, self.heatmaps = [], []
        self.probes, self.labels = probes, labels

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs_begun.append(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self.epochs_begun.append(("batch", batch))

    def on_epoch_end(self, epoch, logs=None):
        if self.probes is not None:
            self.heatmaps.append(tfg.GradCAM(self.model)(self.probes, self.labels).heatmaps)


def has_tensorboard():
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------- the shapes run
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes_run")
    kw = dict(size=SIZE, classes=CLASSES, clutter=False, min_size=12, max_size=18, noise=0.02)
    train, val = make_shapes(800, seed=1, **kw), make_shapes(200, seed=2, **kw)
    keras.utils.set_random_seed(0)
    model = small_cnn((SIZE, SIZE, 3), len(CLASSES), width=16)
    steps = EPOCHS * -(-len(train) // 32)
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    probes = val.subset(slice(0, N_PROBES))
    log_dir, png_dir = root / "logs", root / "png"
    callback = tfg.GradCAMCallback(
        (probes.images, probes.labels), log_dir, class_names=CLASSES, log_heatmaps=True,
        log_grid=True, png_dir=png_dir, animation=["gif", "grid"])
    spy = Spy(probes.images, probes.labels)
    callbacks = [callback, spy]
    if has_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(str(log_dir), update_freq=3))
    history = model.fit(train.images, train.labels, epochs=EPOCHS, batch_size=32,
                        validation_data=(val.images, val.labels), callbacks=callbacks, verbose=0)
    return dict(model=model, callback=callback, spy=spy, history=history.history, probes=probes,
                log_dir=log_dir, png_dir=png_dir, images=read_images(log_dir / "gradcam"))


def tag(run, i, kind=""):
    return f"gradcam{kind}/probe_{i:02d}/{CLASSES[run['probes'].labels[i]]}"


def test_event_tags_steps_and_image_sizes(run):
    images = run["images"]
    expected = {tag(run, i) for i in range(N_PROBES)}
    expected |= {tag(run, i, "_heatmap") for i in range(N_PROBES)}
    expected.add("gradcam/grid")
    assert set(images) == expected
    for name, by_step in images.items():
        assert sorted(by_step) == list(range(EPOCHS)), name
        png, width, height = by_step[EPOCHS - 1]
        pixels = decode(png)
        assert (pixels.shape[1], pixels.shape[0]) == (width, height)
        if name == "gradcam/grid":  # 12 tiles, 4 columns, 2 px gaps
            assert pixels.shape == (3 * SIZE + 2 * 2, 4 * SIZE + 3 * 2, 3)
        elif "_heatmap/" in name:
            assert pixels.shape == (SIZE, SIZE, 1)
        else:
            assert pixels.shape == (SIZE, SIZE, 3)


def test_the_model_learned_and_the_last_maps_sit_on_the_objects(run):
    assert run["history"]["val_accuracy"][-1] > 0.8
    boxes = run["probes"].boxes
    hits = []
    for i in range(N_PROBES):
        heat = decode(run["images"][tag(run, i, "_heatmap")][EPOCHS - 1][0])[..., 0]
        assert heat.max() == 255
        y, x = np.unravel_index(np.argmax(heat), heat.shape)
        y0, x0, y1, x1 = boxes[i]
        hits.append(y0 - 1 <= y <= y1 and x0 - 1 <= x <= x1)  # 1 px: maps come from 8 x 8
    assert sum(hits) >= 0.75 * N_PROBES, hits


def test_logged_maps_are_the_weights_of_that_epoch(run):
    spy = run["spy"]
    assert len(spy.heatmaps) == EPOCHS
    for epoch, expected in enumerate(spy.heatmaps):
        for i in range(N_PROBES):
            got = decode(run["images"][tag(run, i, "_heatmap")][epoch][0])[..., 0] / 255.0
            np.testing.assert_allclose(got, expected[i], atol=1.0 / 255 + 1e-6)
    # ... and those maps move as the model learns
    assert np.abs(spy.heatmaps[0] - spy.heatmaps[-1]).max() > 0.3
    np.testing.assert_allclose(run["callback"].last_explanation.heatmaps, spy.heatmaps[-1],
                               atol=1e-5)


def test_one_compiled_step_for_the_whole_run(run):
    assert run["callback"].explainer.trace_count == 1
    assert run["callback"].logged_steps == list(range(EPOCHS))


def test_overlays_show_the_probe_under_the_map(run):
    png = run["images"][tag(run, 0)][EPOCHS - 1][0]
    expected = tfg.render.overlay_batch(run["probes"].images[:1],
                                        run["spy"].heatmaps[-1][:1])[0]
    assert np.abs(decode(png).astype(int) - expected).max() <= 2


@pytest.mark.skipif(not has_tensorboard(), reason="keras.callbacks.TensorBoard needs tensorboard")
def test_keras_tensorboard_shares_the_log_dir(run):
    from tensorboard.backend.event_processing import event_accumulator

    log_dir = run["log_dir"]
    assert sorted(p.name for p in log_dir.iterdir()) == ["gradcam", "train", "validation"]
    # Keras' epoch summaries pass through its own record_if (update_freq=3 keeps only some);
    # ours ignore it: every epoch is in the images (test_event_tags_steps_and_image_sizes).
    losses = read_scalars(log_dir / "train")["epoch_loss"]
    assert losses and set(losses) <= set(range(EPOCHS))
    for epoch, loss in losses.items():
        assert loss == pytest.approx(run["history"]["loss"][epoch], rel=1e-6)
    # TensorBoard's own reader sees our images.
    acc = event_accumulator.EventAccumulator(str(log_dir / "gradcam"),
                                             size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()["tensors"]
    assert len(tags) == 2 * N_PROBES + 1
    assert {acc.SummaryMetadata(t).plugin_data.plugin_name for t in tags} == {"images"}
    assert [e.step for e in acc.Tensors("gradcam/grid")] == list(range(EPOCHS))


def test_png_sink_holds_the_same_pictures(run):
    png_dir = run["png_dir"]
    folders = sorted(p.name for p in png_dir.iterdir() if p.is_dir())
    assert folders == [f"epoch_{e:03d}" for e in range(EPOCHS)]
    files = sorted(p.name for p in (png_dir / f"epoch_{EPOCHS - 1:03d}").iterdir())
    assert len(files) == 2 * N_PROBES + 1 and "grid.png" in files
    name = f"probe_03_{CLASSES[run['probes'].labels[3]]}"
    assert f"{name}.png" in files and f"{name}_heatmap.png" in files
    for epoch in (0, EPOCHS - 1):
        on_disk = (png_dir / f"epoch_{epoch:03d}" / f"{name}.png").read_bytes()
        assert on_disk == run["images"][tag(run, 3)][epoch][0]


def test_gif_and_epoch_grid_per_probe(run):
    from PIL import Image

    png_dir = run["png_dir"]
    gifs = sorted(png_dir.glob("*.gif"))
    assert len(gifs) == N_PROBES
    name = f"probe_05_{CLASSES[run['probes'].labels[5]]}"
    with Image.open(png_dir / f"{name}.gif") as gif:
        assert gif.n_frames == EPOCHS
        assert gif.size[0] == SIZE and gif.size[1] > SIZE  # a caption strip above the map
    strip = decode((png_dir / f"{name}_epochs.png").read_bytes())
    assert strip.shape[1] == EPOCHS * SIZE + (EPOCHS - 1) * 2


# ---------------------------------------------------------------------- training is unchanged
class Meddler(keras.callbacks.Callback):
    """What a careless callback does: a forward pass in training mode (dropout draws numbers)."""

    def __init__(self, x):
        super().__init__()
        self.x = x

    def on_epoch_end(self, epoch, logs=None):
        self.model(self.x, training=True)


def _fit_tiny(extra_callbacks, epochs=2):
    keras.utils.set_random_seed(7)
    model = tiny_model()
    x, y = tiny_data(48)
    history = model.fit(x, y, epochs=epochs, batch_size=8, shuffle=True, verbose=0,
                        callbacks=extra_callbacks(x, y))
    return history.history["loss"], [w.numpy() for w in model.weights]


def test_logging_does_not_change_training(tmp_path):
    base_loss, base_weights = _fit_tiny(lambda x, y: [])
    loss, weights = _fit_tiny(lambda x, y: [tfg.GradCAMCallback(
        x[:4], tmp_path / "a", top_k=2, log_heatmaps=True, log_grid=True)])
    assert loss == base_loss
    for a, b in zip(weights, base_weights):
        np.testing.assert_array_equal(a, b)
    # The comparison has teeth: a callback that runs the model in training mode shows.
    meddled_loss, _ = _fit_tiny(lambda x, y: [Meddler(x[:4])])
    assert meddled_loss != base_loss


# ---------------------------------------------------------------------- targets, steps, probes
def _tiny_fit(callback, epochs=2, n=32, batch_size=8, **fit_kw):
    keras.utils.set_random_seed(1)
    model = tiny_model()
    x, y = tiny_data(n)
    spy = Spy()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
              callbacks=[callback, spy], **fit_kw)
    return model, spy


def test_top_k_fixed_and_per_probe_targets(tmp_path):
    x, _ = tiny_data(3)
    cb = tfg.GradCAMCallback(x, tmp_path / "topk", top_k=2, class_names=["a", "b", "c"])
    model, _ = _tiny_fit(cb, epochs=1)
    tags = set(read_images(tmp_path / "topk" / "gradcam"))
    assert tags == {f"gradcam/probe_{i:02d}/top_{k}" for i in range(3) for k in (1, 2)}
    probs = model.predict(x, verbose=0)
    ranked = np.argsort(-probs, axis=1)[:, :2].reshape(-1)
    np.testing.assert_array_equal(cb.last_explanation.targets, ranked)
    assert cb.explainer.trace_count == 1  # top-k is ranked inside the one compiled step

    cb = tfg.GradCAMCallback(x, tmp_path / "fixed", targets=[[0, 2], [1, 1], [2, 0]],
                             class_names=["a", "b", "c"], name="cam")
    _tiny_fit(cb, epochs=1)
    tags = set(read_images(tmp_path / "fixed" / "gradcam"))
    assert tags == {"cam/probe_00/a", "cam/probe_00/c", "cam/probe_01/b", "cam/probe_02/c",
                    "cam/probe_02/a"} and len(cb.last_explanation) == 6

    cb = tfg.GradCAMCallback(x, tmp_path / "top", subdir=None)
    _tiny_fit(cb, epochs=1)
    assert set(read_images(tmp_path / "top")) == {f"gradcam/probe_{i:02d}/top" for i in range(3)}


def test_every_n_epochs_and_every_n_batches(tmp_path):
    x, _ = tiny_data(2)
    cb = tfg.GradCAMCallback(x, tmp_path / "e", targets=1, every_n_epochs=2)
    _tiny_fit(cb, epochs=5)
    assert cb.logged_steps == [0, 2, 4]
    by_step = read_images(tmp_path / "e" / "gradcam")["gradcam/probe_00/class_1"]
    assert sorted(by_step) == [0, 2, 4]

    # 32 samples in batches of 8: 4 batches an epoch, 8 in all; the step counts batches.
    cb = tfg.GradCAMCallback(x, None, targets=1, every_n_batches=3, png_dir=tmp_path / "b")
    _tiny_fit(cb, epochs=2)
    assert cb.logged_steps == [3, 6]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["batch_000003", "batch_000006"]


def test_probes_from_a_dataset_are_taken_once(tmp_path):
    pulled = []
    x, y = tiny_data(20)

    def gen():
        for i in range(0, 20, 4):
            pulled.append(i)
            yield x[i: i + 4], y[i: i + 4]

    spec = (tf.TensorSpec((None, 16, 16, 3), tf.float32), tf.TensorSpec((None,), tf.int64))
    ds = tf.data.Dataset.from_generator(gen, output_signature=spec)
    cb = tfg.GradCAMCallback(ds, tmp_path / "ds", max_probes=6)
    taken = len(pulled)
    assert taken < 5  # two batches needed (tf.data may read one or two ahead), not all five
    _tiny_fit(cb, epochs=3)
    assert len(pulled) == taken  # not iterated again
    np.testing.assert_array_equal(cb.last_explanation.targets, y[:6])  # the labels are explained
    assert len(read_images(tmp_path / "ds" / "gradcam")) == 6


def test_other_methods_by_name_or_class(tmp_path):
    x, y = tiny_data(2)
    method = tfg.get_method("gradcam++")
    cb = tfg.GradCAMCallback((x, y), tmp_path / "pp", method=method,
                             method_options={"score": "probabilities"}, layer="conv")
    _tiny_fit(cb, epochs=1)
    assert isinstance(cb.explainer, method) and cb.explainer.score == "probabilities"
    assert cb.explainer.layer.name == "conv"
    assert set(read_images(tmp_path / "pp" / "gradcam")) == {
        f"gradcam_plus_plus/probe_{i:02d}/class_{y[i]}" for i in range(2)}

    cb = tfg.GradCAMCallback((x, y), tmp_path / "score", method="scorecam")
    _tiny_fit(cb, epochs=1)
    assert cb.explainer.name == "scorecam" and cb.explainer.trace_count == 1
    assert len(read_images(tmp_path / "score" / "gradcam")) == 2


# ---------------------------------------------------------------------- fail fast
@pytest.mark.parametrize("kwargs, inputs, match", [
    (dict(layer="no_such_layer"), None, "no_such_layer"),
    (dict(layer="probs"), None, "spatial"),
    (dict(targets=7), None, "7"),
    (dict(targets=[0, 1]), None, "2 targets for 3"),
    (dict(labels=[0, 1, 9]), None, "9"),
    (dict(class_names=["a", "b"]), None, "class_names"),
    (dict(top_k=4), None, "top_k=4"),
    ({}, np.zeros((3, 12, 12, 3), np.float32), r"\(3, 12, 12, 3\)"),
    ({}, np.zeros((16, 16, 3), np.float32), "one sample"),
])
def test_bad_setup_fails_before_the_first_epoch(tmp_path, kwargs, inputs, match):
    x = tiny_data(3)[0] if inputs is None else inputs
    cb = tfg.GradCAMCallback(x, tmp_path, **kwargs)
    keras.utils.set_random_seed(1)
    model = tiny_model()
    before = [w.numpy() for w in model.weights]
    spy = Spy()
    with pytest.raises(ValueError, match=match):
        model.fit(*tiny_data(16), epochs=1, verbose=0, callbacks=[cb, spy])
    assert spy.epochs_begun == []
    for a, b in zip(before, model.weights):
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("kwargs, match", [
    (dict(every_n_epochs=0), "every_n_epochs must be a positive int, got 0"),
    (dict(every_n_epochs=1.5), "1.5"),
    (dict(every_n_batches=-2), "every_n_batches must be a positive int, got -2"),
    (dict(every_n_batches=5, every_n_epochs=2), "not both"),
    (dict(max_probes=0), "max_probes"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=2, targets=1), "top_k=2"),
    (dict(method="no_such_method"), "no_such_method"),
    (dict(method=dict), "Explainer"),
    (dict(method_options={"layer": "x"}), "layer"),
    (dict(method_options=["score"]), "method_options"),
    (dict(method_options={"scor": "logits"}), r"\['scor'\] are not options of GradCAM"),
    (dict(targets=[[0, 1], [2]]), r"\[\[0, 1\], \[2\]\]"),
    (dict(alpha=1.5), "1.5"),
    (dict(layer=3), "layer must be"),
    (dict(class_names="abc"), "class_names"),
    (dict(targets=[0.5, 1.5, 2.5]), "targets"),
    (dict(animation="mp4", png_dir="x"), "mp4"),
    (dict(animation="gif"), "png_dir"),
    (dict(labels=[0, 1]), r"\[3\]"),
    (dict(colormap="no_such_map"), "no_such_map"),  # checked at once, not at train begin
    (dict(log_dir=None), "Nothing to write"),
])
def test_bad_arguments_fail_at_construction(tmp_path, kwargs, match):
    kwargs.setdefault("log_dir", tmp_path)
    with pytest.raises(ValueError, match=match):
        tfg.GradCAMCallback(tiny_data(3)[0], **kwargs)


def test_empty_probes_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        tfg.GradCAMCallback(tf.data.Dataset.from_tensor_slices(np.zeros((0, 2, 2, 3))).batch(2),
                            tmp_path)
    with pytest.raises(ValueError, match="no samples"):
        tfg.GradCAMCallback(np.zeros((0, 16, 16, 3)), tmp_path)


# ---------------------------------------------------------------------- by hand
def test_log_heatmaps_by_hand_writes_what_tf_summary_image_writes(tmp_path):
    model = tiny_model()
    x, _ = tiny_data(3)
    result = tfg.GradCAM(model)(x, [0, 1, 2])
    logged = tfg.log_heatmaps(tmp_path / "hand", x, result, step=5, class_names=["a", "b", "c"],
                              include_heatmaps=True, max_images=2)
    assert [item.tag for item in logged] == [
        "gradcam/probe_00/a", "gradcam/probe_01/b", "gradcam_heatmap/probe_00/a",
        "gradcam_heatmap/probe_01/b"]
    images = read_images(tmp_path / "hand")
    assert set(images) == {item.tag for item in logged}
    heat = decode(images["gradcam_heatmap/probe_01/b"][5][0])[..., 0]
    np.testing.assert_allclose(heat / 255.0, result.heatmaps[1], atol=1 / 255 + 1e-6)
    if has_tensorboard():  # the same record as tf.summary.image
        writer = tf.summary.create_file_writer(str(tmp_path / "ref"))
        with writer.as_default():
            tf.summary.image("ref", logged[0].image[None], step=5)
        writer.flush()
        ref = read_images(tmp_path / "ref")["ref"][5]
        ours = images["gradcam/probe_00/a"][5]
        assert ref[1:] == ours[1:]
        np.testing.assert_array_equal(decode(ref[0]), decode(ours[0]))
    with pytest.raises(ValueError, match="2 images for 3 heatmaps"):
        tfg.log_heatmaps(None, x[:2], result, step=0)


# ---------------------------------------------------------------------- precision, devices
def test_mixed_precision(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(2)
        model = tiny_model(dropout=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("last_conv").compute_dtype == "float16"
    x, y = tiny_data(32)
    cb = tfg.GradCAMCallback((x[:4], y[:4]), tmp_path, log_heatmaps=True)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb])
    heat = cb.last_explanation.heatmaps
    assert heat.dtype == np.float32 and np.isfinite(heat).all() and heat.max() == pytest.approx(1)
    assert sorted(next(iter(read_images(tmp_path / "gradcam").values()))) == [0, 1]
    assert cb.explainer.trace_count == 1


DISTRIBUTED = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    import tf_gradcam as tfg
    from tests.test_callback import tiny_model, tiny_data, read_images

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tiny_model()
    x, y = tiny_data(32)
    log_dir = sys.argv[1]
    cb = tfg.GradCAMCallback((x[:4], y[:4]), log_dir, log_heatmaps=True,
                             png_dir=os.path.join(log_dir, "png"))
    model.fit(x, y, epochs=2, batch_size=8, validation_data=(x, y), verbose=0, callbacks=[cb])
    fresh = tfg.GradCAM(model)(x[:4], y[:4]).heatmaps
    images = read_images(os.path.join(log_dir, "gradcam"))
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "steps": cb.logged_steps,
        "traces": cb.explainer.trace_count,
        "tags": len(images),
        "tag_steps": sorted({s for by in images.values() for s in by}),
        "max_diff": float(np.abs(fresh - cb.last_explanation.heatmaps).max()),
        "pngs": len(os.listdir(os.path.join(log_dir, "png", "epoch_001"))),
    }))
""")


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = tmp_path / "distributed.py"
    script.write_text(DISTRIBUTED)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "logs")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["steps"] == [0, 1] and out["tag_steps"] == [0, 1]
    assert out["traces"] == 1 and out["tags"] == 8 and out["pngs"] == 8
    assert out["max_diff"] < 1e-5


# ---------------------------------------------------------------------- review follow-ups
def test_labels_of_non_classifiers_are_not_read_as_classes(tmp_path):
    """A binary sigmoid head with 0/1 labels (two classes: its logit and the negated one), and
    a regression head with float targets (never classes)."""
    keras.utils.set_random_seed(2)
    x, _ = tiny_data(16)
    inp = keras.Input((16, 16, 3))
    feat = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, activation="relu", name="last_conv")(inp))
    binary = keras.Model(inp, L.Dense(1, activation="sigmoid")(feat))
    binary.compile("adam", "binary_crossentropy")
    y01 = (np.arange(16) % 2).astype(np.float32)
    cb = tfg.GradCAMCallback((x[:4], y01[:4]), png_dir=tmp_path / "bin")
    binary.fit(x, y01, epochs=1, batch_size=8, verbose=0, callbacks=[cb])
    np.testing.assert_array_equal(cb.last_explanation.targets, y01[:4])
    dense = binary.layers[-1]  # the sigmoid unit's logit, from its trained kernel and bias
    feats = keras.Model(inp, dense.input).predict(x[:4], verbose=0)
    z = (feats @ dense.kernel.numpy() + dense.bias.numpy())[:, 0]
    np.testing.assert_allclose(cb.last_explanation.scores, np.where(y01[:4] == 1, z, -z),
                               rtol=1e-4, atol=1e-6)

    reg = keras.Model(inp, L.Dense(1)(feat))
    reg.compile("adam", "mse")
    y = np.linspace(-1, 1, 16).astype(np.float32)
    cb = tfg.GradCAMCallback((x[:4], y[:4]), png_dir=tmp_path / "reg",
                             targets=lambda out: out[:, 0])
    reg.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[cb])
    assert len(cb.last_explanation) == 4


def test_unbatched_probe_dataset_says_batch_it(tmp_path):
    x, y = tiny_data(8)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    with pytest.raises(ValueError, match=r"batch it first"):
        tfg.GradCAMCallback(ds, png_dir=tmp_path)
    model = tiny_model()
    cb = tfg.GradCAMCallback(tf.data.Dataset.from_tensor_slices(x), png_dir=tmp_path)
    with pytest.raises(ValueError, match=r"single samples.*batch it first"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])


def test_colormap_function_is_refused_at_once(tmp_path):
    x, _ = tiny_data(4)
    with pytest.raises(ValueError, match="colormap must be"):
        tfg.GradCAMCallback(x, png_dir=tmp_path, colormap=lambda v: v)


def test_log_heatmaps_recreates_a_removed_log_dir(tmp_path):
    import shutil

    model = tiny_model()
    x, _ = tiny_data(2)
    result = tfg.GradCAM(model)(x)
    log_dir = tmp_path / "logs"
    tfg.log_heatmaps(log_dir, x, result, step=0)
    shutil.rmtree(log_dir)
    tfg.log_heatmaps(log_dir, x, result, step=1)
    steps = {s for by_step in read_images(str(log_dir)).values() for s in by_step}
    assert steps == {1}


# ---------------------------------------------------------------------- captions and GIFs
@pytest.mark.parametrize("width", [4, 8, 16, 32, 64, 240])
def test_frames_of_identical_maps_stay_distinct_at_any_width(tmp_path, width, monkeypatch):
    # An all-zero map at epochs 0 and 1 (a class not learned yet) gives identical overlays; only
    # the caption tells the frames apart, and Pillow merges identical consecutive GIF frames. The
    # caption is drawn in a NumPy bitmap font, so OpenCV's text (whose metrics differ between
    # 4.x and 5.0) is never asked.
    import cv2
    from PIL import Image

    from tf_gradcam.training import _images

    def no_opencv_text(*args, **kwargs):
        raise AssertionError("captions must not depend on OpenCV's fonts")

    monkeypatch.setattr(cv2, "putText", no_opencv_text)
    monkeypatch.setattr(cv2, "getTextSize", no_opencv_text)
    picture = np.full((width, width, 3), 90, np.uint8)
    epochs = 12
    captions = [(f"epoch {e}: cross", picture) for e in range(epochs)]
    _images.write_animations({(0, "cross"): captions}, str(tmp_path), 1, ["gif", "grid"], 100)
    with Image.open(tmp_path / "probe_00_cross.gif") as gif:
        assert gif.n_frames == epochs
        frames = []
        for i in range(epochs):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
    assert frames[0].shape[1] == width and frames[0].shape[0] > width
    for a, b in zip(frames, frames[1:]):
        assert (a != b).any()
    grid = cv2.imread(str(tmp_path / "probe_00_cross_epochs.png"))
    assert grid.shape[1] == 10 * width + 9 * _images.GAP


def test_caption_font_is_fixed_pixels():
    from tf_gradcam.training import _font
    from tf_gradcam.training._images import caption_strips

    ink = _font.render("epoch 10", 1)
    assert ink.shape == (_font.GLYPH_H, _font.text_width("epoch 10"))
    np.testing.assert_array_equal(ink, _font.render("EPOCH 10", 1))  # capitals for lower case
    assert _font.render("é", 1).tobytes() == _font.render("?", 1).tobytes()
    assert _font.render("ab", 3).shape == (15, 21)
    # Too long for one line: wrapped at the space, never cut.
    scale, lines = _font.layout(["epoch 10", "epoch 9"], 24)
    assert scale == 1 and lines == [["epoch", "10"], ["epoch", "9"]]
    assert _font.layout(["a longword"], 13)[1] == [["a", "lon", "gwo", "rd"]]
    strips = caption_strips(["epoch 9", "epoch 10"], 32)
    assert strips[0].shape == strips[1].shape and strips[0].dtype == np.uint8
    assert set(np.unique(strips[0])) == {0, 255}
    # Wide images get larger letters.
    assert _font.layout(["epoch 1"], 400)[0] == 5
