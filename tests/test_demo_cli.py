"""The offline demo end to end, and the tf-gradcam command line on the model it saves."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from tf_gradcam import cli
from tf_gradcam.demo import pointing_hits


def fields(line: str) -> dict:
    """One line of ``tf-gradcam explain``: ``path, key=value..., overlay path`` by tabs."""
    parts = line.split("\t")
    out = dict(part.split("=", 1) for part in parts[1:-1])
    out["path"], out["overlay"] = parts[0], parts[-1]
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One reduced demo run (about 20 s on 2 CPU cores), shared by the tests below."""
    from tf_gradcam.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    return run_demo(str(out), n_train=1500, n_test=200, epochs=6, n_explain=10, seed=0, verbose=0)


def test_pointing_hits() -> None:
    heat = np.zeros((3, 8, 8), np.float32)
    heat[0, 2, 3] = 1.0  # inside box 0
    heat[1, 7, 7] = 1.0  # outside box 1
    boxes = np.array([[2, 3, 4, 5], [0, 0, 7, 7], [0, 0, 8, 8]])
    # Map 2 is all zero: it points nowhere, even though its argmax (0, 0) is in the box.
    np.testing.assert_array_equal(pointing_hits(heat, boxes), [True, False, False])


@pytest.mark.slow
def test_demo_learns_and_localises(demo) -> None:
    assert demo["accuracy"] > 0.85
    assert demo["pointing"] >= 0.7
    assert len(demo["overlays"]) == 10
    for path in demo["overlays"] + [demo["summary"], demo["model_path"]] + demo["inputs"]:
        assert os.path.getsize(path) > 0, path
    picture = cv2.imread(demo["overlays"][0])
    assert picture.shape == (256, 256, 3)
    summary = cv2.imread(demo["summary"])
    assert summary is not None and summary.shape[0] > 400


@pytest.mark.slow
def test_cli_layers_lists_last_conv_first(demo, capsys) -> None:
    assert cli.main(["layers", demo["model_path"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names[0] == "last_conv"
    assert "block1_conv" in names and "predictions" not in names
    # Each name with its output shape, batch first.
    assert lines[0].split(None, 1)[1] == "[None, 16, 16, 64]"


@pytest.mark.slow
def test_cli_explain_writes_overlays(demo, tmp_path, capsys) -> None:
    import keras

    images = demo["inputs"][:3]
    out = tmp_path / "out"
    code = cli.main(["explain", demo["model_path"], *images, "--out", str(out), "--alpha", "0.5"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    # The printed targets are the model's own top classes for those files.
    model = keras.saving.load_model(demo["model_path"], compile=False)
    pixels = np.stack([cv2.imread(p)[..., ::-1] for p in images]).astype(np.float32) / 255.0
    predicted = model.predict(pixels, verbose=0).argmax(axis=1)
    for line, path, pred in zip(lines, images, predicted):
        row = fields(line)
        assert row["path"] == path and row["target"] == str(pred)
        assert row["layer"] == "last_conv"
        assert float(row["score"]) > 0
        written = row["overlay"]
        overlay_png = cv2.imread(written)
        source_png = cv2.imread(path)
        assert overlay_png.shape == source_png.shape
        assert np.abs(overlay_png.astype(int) - source_png.astype(int)).mean() > 10

    # A fixed target and another method.
    capsys.readouterr()
    assert cli.main(["explain", demo["model_path"], images[0], "--out", str(out),
                     "--target", "2", "--method", "gradcam++"]) == 0
    line = capsys.readouterr().out.strip()
    assert fields(line)["target"] == "2" and line.endswith("gradcam++.png")


@pytest.mark.slow
def test_cli_explain_errors_on_loaded_model(demo, tmp_path, capsys) -> None:
    image = demo["inputs"][0]
    assert cli.main(["explain", demo["model_path"], image, "--layer", "nope",
                     "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and err.count("\n") == 1 and "Traceback" not in err
    assert cli.main(["explain", demo["model_path"], image, "--method", "nomethod"]) == 2
    assert "nomethod" in capsys.readouterr().err


def test_cli_missing_files(tmp_path, capsys) -> None:
    missing = str(tmp_path / "missing.keras")
    assert cli.main(["layers", missing]) == 2
    err = capsys.readouterr().err
    assert err == f"tf-gradcam: error: model file not found: {missing}\n"

    model = tmp_path / "m.keras"
    model.write_bytes(b"not a model")
    assert cli.main(["explain", str(model), str(tmp_path / "nope.png")]) == 2
    assert "image not found" in capsys.readouterr().err


def test_cli_bad_model_file(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"this is not a zip archive")
    assert cli.main(["layers", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tf-gradcam: error: could not load model")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_unreadable_image(tmp_path, capsys, small_saved_model) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert cli.main(["explain", small_saved_model, str(text), "--out", str(tmp_path)]) == 2
    assert "could not read image" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_saved_model(tmp_path_factory) -> str:
    """An untrained small_cnn saved to disk: enough for argument and I/O errors."""
    from tf_gradcam.data import small_cnn

    path = str(tmp_path_factory.mktemp("model") / "small.keras")
    small_cnn((32, 32, 3)).save(path)
    return path


def test_cli_usage_errors(capsys) -> None:
    assert cli.main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert cli.main([]) == 2
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["explain", "m.keras", "x.png", "--alpha", "2"]) == 2
    assert "--alpha" in capsys.readouterr().err
    assert cli.main(["demo", "--epochs", "0"]) == 2


def test_cli_explain_resizes_and_raw_pixels(tmp_path, capsys, small_saved_model) -> None:
    # A 50 x 40 grey PNG is read as RGB, resized to the model's 32 x 32, and the overlay
    # is drawn at the file's own size.
    img = np.random.default_rng(0).integers(0, 256, (50, 40), dtype=np.uint8)
    path = str(tmp_path / "grey.png")
    cv2.imwrite(path, img)
    out = tmp_path / "out"
    assert cli.main(["explain", small_saved_model, path, path, "--out", str(out),
                     "--raw-pixels", "--colormap", "viridis"]) == 0
    written = [line.split("\t")[-1] for line in capsys.readouterr().out.strip().splitlines()]
    # Two inputs with the same name get distinct output files.
    assert len(set(written)) == 2
    for w in written:
        assert cv2.imread(w).shape == (50, 40, 3)
    assert cli.main(["explain", small_saved_model, path, "--colormap", "nocmap"]) == 2
    assert "unknown colormap" in capsys.readouterr().err


def test_cli_raw_pixels_changes_what_the_model_sees(tmp_path, capsys, small_saved_model) -> None:
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    path = str(tmp_path / "colour.png")
    cv2.imwrite(path, img)

    def score(*flags):
        assert cli.main(["explain", small_saved_model, path, "--out", str(tmp_path / "o"),
                         "--target", "1", *flags]) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        return float(fields(line)["score"])

    # The same picture in [0, 1] and in [0, 255] is a different input to the network.
    assert score() != pytest.approx(score("--raw-pixels"), rel=1e-3)


def test_import_and_help_do_not_load_tensorflow() -> None:
    import subprocess
    import sys

    code = ("import sys, tf_gradcam as tfg; from tf_gradcam import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
            "assert 'GradCAM' in dir(tfg)\n"
            "try:\n    tfg.NoSuchThing\nexcept AttributeError:\n    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


# ---------------------------------------------------------------- many images, custom models
def _write_images(folder, n: int, size=(32, 32), seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = str(folder / f"img{i}.png")
        cv2.imwrite(path, rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_cli_skips_an_unreadable_image_and_exits_nonzero_at_the_end(
        tmp_path, capsys, small_saved_model) -> None:
    good = _write_images(tmp_path / "imgs", 3)
    bad = tmp_path / "imgs" / "img1b.png"  # sorts between the good ones
    bad.write_bytes(b"\x89PNG but truncated")
    code = cli.main(["explain", small_saved_model, str(tmp_path / "imgs"), "--out",
                     str(tmp_path / "out"), "--batch-size", "2"])
    captured = capsys.readouterr()
    assert code == 1
    rows = [fields(line) for line in captured.out.strip().splitlines()]
    assert [r["path"] for r in rows] == sorted(good)  # every readable image was explained
    assert all(os.path.getsize(r["overlay"]) > 0 for r in rows)
    warnings = captured.err.strip().splitlines()
    assert warnings[0] == (f"tf-gradcam: warning: could not read image {bad} (not an image "
                           "OpenCV can decode); skipped")
    assert warnings[-1] == "tf-gradcam: warning: 1 of 4 images could not be read and were skipped"
    assert "Traceback" not in captured.err


def test_cli_takes_directories_and_glob_patterns(tmp_path, capsys, small_saved_model) -> None:
    top = _write_images(tmp_path / "a", 2)
    deep = _write_images(tmp_path / "a" / "sub", 1, seed=1)
    (tmp_path / "a" / "notes.txt").write_text("not an image, and not picked from a folder")
    out = str(tmp_path / "out")

    def explained(*images) -> list[str]:
        assert cli.main(["explain", small_saved_model, *images, "--out", out]) == 0
        return [fields(line)["path"] for line in capsys.readouterr().out.strip().splitlines()]

    assert explained(str(tmp_path / "a")) == top  # a folder: its image files, sorted
    assert explained(str(tmp_path / "a" / "*.png")) == top
    assert explained(str(tmp_path / "a" / "**" / "*.png")) == sorted(top + deep)
    assert explained(str(tmp_path / "a"), top[0]) == top + top[:1]
    # A folder or pattern naming no image is a mistake, said before TensorFlow starts.
    (tmp_path / "empty").mkdir()
    assert cli.main(["explain", small_saved_model, str(tmp_path / "empty")]) == 2
    assert "holds no image file" in capsys.readouterr().err
    assert cli.main(["explain", small_saved_model, str(tmp_path / "*.jpg")]) == 2
    assert "no file matches" in capsys.readouterr().err


_CUSTOM_LAYERS = '''
import keras


class TimesTwo(keras.layers.Layer):
    """A custom layer Keras cannot rebuild without being given the class."""

    def call(self, x):
        return x * 2.0


def helper_activation(x):
    return keras.ops.relu(x) - 0.5
'''


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory):
    """A model with a custom layer and a custom activation, saved from a module that is
    not importable when the model is loaded again."""
    import keras

    folder = tmp_path_factory.mktemp("custom")
    (folder / "my_layers.py").write_text(_CUSTOM_LAYERS)
    namespace: dict = {"__name__": "gone_module"}
    exec(compile(_CUSTOM_LAYERS, "gone_module.py", "exec"), namespace)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv", activation=namespace["helper_activation"])(inp)
    x = namespace["TimesTwo"](name="times_two")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = str(folder / "custom.keras")
    keras.Model(inp, keras.layers.Dense(2)(x)).save(path)
    return folder, path


def test_cli_loads_custom_layers_from_a_file_or_a_module(
        custom_model, tmp_path, capsys, monkeypatch) -> None:
    folder, model = custom_model
    assert cli.main(["layers", model]) == 2
    err = capsys.readouterr().err
    assert "could not load model" in err and "--custom-objects my_layers.py" in err
    assert cli.main(["layers", model, "--custom-objects", str(folder / "my_layers.py")]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names[:2] == ["times_two", "conv"]
    # An importable module name does the same.
    monkeypatch.syspath_prepend(str(folder))
    image = _write_images(tmp_path / "imgs", 1, size=(16, 16))[0]
    assert cli.main(["explain", model, image, "--custom-objects", "my_layers",
                     "--out", str(tmp_path / "out")]) == 0
    assert fields(capsys.readouterr().out.strip())["layer"] == "times_two"
    # Mistakes in the option are one line each.
    assert cli.main(["layers", model, "--custom-objects", "no_such_module_here"]) == 2
    assert "cannot import custom objects module 'no_such_module_here'" in capsys.readouterr().err
    (tmp_path / "empty_mod.py").write_text("X = 1\n")
    assert cli.main(["layers", model, "--custom-objects", str(tmp_path / "empty_mod.py")]) == 2
    assert "defines no public Keras" in capsys.readouterr().err


def test_cli_prints_layer_class_name_and_score_in_full_precision(
        tmp_path, capsys, small_saved_model) -> None:
    import keras

    import tf_gradcam as tfg

    images = _write_images(tmp_path / "imgs", 2)
    names = tmp_path / "names.txt"
    names.write_text("circle\nsquare\ntriangle\n\n")
    out = str(tmp_path / "out")
    assert cli.main(["explain", small_saved_model, *images, "--out", out,
                     "--class-names", str(names)]) == 0
    rows = [fields(line) for line in capsys.readouterr().out.strip().splitlines()]
    model = keras.saving.load_model(small_saved_model, compile=False)
    pixels = np.stack([cv2.imread(p)[..., ::-1] for p in images]).astype(np.float32) / 255.0
    expected = tfg.GradCAM(model)(pixels)
    for row, target, score in zip(rows, expected.targets, expected.scores):
        assert row["layer"] == "last_conv"
        assert row["target"] == str(target)
        assert row["class"] == ["circle", "square", "triangle"][target]
        # The untrained model's logits are about 0.01: printed so that they read back as the
        # same float32, not rounded to 0.0000.
        assert np.float32(row["score"]) == np.float32(score)
        assert len(row["score"].replace("-", "").replace(".", "").lstrip("0")) > 4
    # A class by name.
    assert cli.main(["explain", small_saved_model, images[0], "--out", out,
                     "--class-names", str(names), "--target", "triangle"]) == 0
    row = fields(capsys.readouterr().out.strip())
    assert row["target"] == "2" and row["class"] == "triangle"
    assert cli.main(["explain", small_saved_model, images[0], "--class-names", str(names),
                     "--target", "hexagon"]) == 2
    assert "not one of the class names (circle, square, triangle)" in capsys.readouterr().err
    assert cli.main(["explain", small_saved_model, images[0], "--target", "7"]) == 2
    assert "not a class of the model (0 to 2)" in capsys.readouterr().err


def test_cli_hints_at_raw_pixels_when_the_model_rescales_inside(tmp_path, capsys) -> None:
    import keras

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0, name="rescale")(inp)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = str(tmp_path / "rescaling.keras")
    keras.Model(inp, keras.layers.Dense(2)(x)).save(path)
    image = _write_images(tmp_path / "imgs", 1, size=(16, 16))[0]
    out = str(tmp_path / "out")
    assert cli.main(["explain", path, image, "--out", out]) == 0
    err = capsys.readouterr().err
    assert err.startswith("tf-gradcam: hint: the model rescales its input inside "
                          "(layer 'rescale'")
    assert "pass --raw-pixels" in err
    assert err.count("\n") == 1  # the hint replaces the engine's warning: one message
    assert cli.main(["explain", path, image, "--out", out, "--raw-pixels"]) == 0
    assert capsys.readouterr().err == ""


def _saved_head_model(path: str, loss) -> str:
    import keras

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3)(x))
    model.compile(optimizer="adam", loss=loss)
    model.save(path)
    return path


@pytest.mark.parametrize("loss", ["mse", "mean_absolute_error", "huber"])
def test_cli_refuses_a_model_saved_with_a_regression_loss(tmp_path, capsys, loss) -> None:
    """The CLI loads without compiling (no optimizer needed), but keeps what the saved loss
    says: three regression outputs are not three classes, as in the Python API."""
    import keras

    loss_arg = keras.losses.Huber() if loss == "huber" else loss
    path = _saved_head_model(str(tmp_path / "reg.keras"), loss_arg)
    image = _write_images(tmp_path / "imgs", 1, size=(16, 16))[0]
    assert cli.main(["explain", path, image, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "regression loss" in err and "targets=" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_cli_still_explains_a_classifier_saved_compiled(tmp_path, capsys) -> None:
    import keras

    path = _saved_head_model(str(tmp_path / "cls.keras"),
                             keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    image = _write_images(tmp_path / "imgs", 1, size=(16, 16))[0]
    assert cli.main(["explain", path, image, "--out", str(tmp_path / "out")]) == 0
    assert "target=" in capsys.readouterr().out


def test_cli_hides_tensorflow_startup_noise_unless_verbose(small_saved_model) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")

    def layers(*flags):
        return subprocess.run([sys.executable, "-m", "tf_gradcam", "layers", small_saved_model,
                               *flags], capture_output=True, text=True, timeout=300, env=env)

    quiet = layers()
    assert quiet.returncode == 0, quiet.stderr
    # TensorFlow >= 2.19 prints its absl and oneDNN lines whatever TF_CPP_MIN_LOG_LEVEL says.
    assert quiet.stderr == ""
    assert quiet.stdout.split()[0] == "last_conv"
    verbose = layers("--verbose")
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout
    assert verbose.stderr.strip(), "with --verbose, TensorFlow's own start-up lines show"
