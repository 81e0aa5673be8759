"""The offline demo end to end, and the tf-gradcam command line on the model it saves."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from tf_gradcam import cli
from tf_gradcam.demo import pointing_hits


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
    lines = capsys.readouterr().out.split()
    assert lines[0] == "last_conv"
    assert "block1_conv" in lines and "predictions" not in lines


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
        src, target, score, written = line.split("\t")
        assert src == path and target == f"target={pred}"
        assert float(score.split("=")[1]) > 0
        overlay_png = cv2.imread(written)
        source_png = cv2.imread(path)
        assert overlay_png.shape == source_png.shape
        assert np.abs(overlay_png.astype(int) - source_png.astype(int)).mean() > 10

    # A fixed target and another method.
    capsys.readouterr()
    assert cli.main(["explain", demo["model_path"], images[0], "--out", str(out),
                     "--target", "2", "--method", "gradcam++"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\ttarget=2\t" in line and line.endswith("gradcam++.png")


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
        return float(line.split("\t")[2].split("=")[1])

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
