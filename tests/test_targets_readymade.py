"""Several classes at once, and ready-made targets: one compiled step per kind, the values as
tensors, the scores against the outputs computed by the model itself."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg

L = keras.layers
T = tfg.targets


class SampleCounter(L.Layer):
    def build(self, shape):
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, dtype="int32")

    def call(self, x):
        self.seen.assign_add(tf.shape(x)[0])
        return x


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(31)
    counter = SampleCounter()
    inp = keras.Input((10, 10, 3))
    a = L.Conv2D(6, 3, activation="relu", name="conv")(counter(inp))
    out = L.Dense(5, activation="softmax", name="fc")(L.Flatten()(a))
    return keras.Model(inp, out), counter


def test_k_classes_per_sample_in_one_forward_pass(classifier, rng):
    model, counter = classifier
    explainer = tfg.GradCAM(model, "conv")
    x = rng.random((4, 10, 10, 3), dtype=np.float32)
    classes = np.array([[0, 3], [1, 1], [4, 2], [2, 0]])
    before = int(counter.seen.numpy())
    both = explainer(x, classes)
    assert int(counter.seen.numpy()) - before == 4  # the 4 images went through once
    assert both.heatmaps.shape == (4, 2, 10, 10) and both.raw.shape == (4, 2, 8, 8)
    assert both.targets.shape == (4, 2) and both.scores.shape == (4, 2)
    for j in range(2):
        one = explainer(x, classes[:, j])
        np.testing.assert_allclose(both.raw[:, j], one.raw, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(both.scores[:, j], one.scores, rtol=1e-6)
    np.testing.assert_array_equal(both.targets, classes)


def test_top_k_is_the_classes_in_descending_score(classifier, rng):
    model, _ = classifier
    x = rng.random((3, 10, 10, 3), dtype=np.float32)
    res = tfg.GradCAM(model, "conv")(x, top_k=3)
    probs = model.predict(x, verbose=0)
    np.testing.assert_array_equal(res.targets, np.argsort(-probs, axis=1)[:, :3])
    assert (np.diff(res.scores, axis=1) <= 0).all()  # logits, highest first
    with pytest.raises(ValueError, match="top_k=6 is more than the model's 5 classes"):
        tfg.GradCAM(model, "conv")(x, top_k=6)
    scored = tfg.ScoreCAM(model, "conv")(x, top_k=2)  # perturbation methods take k classes too
    single = tfg.ScoreCAM(model, "conv")(x, res.targets[:, 1])
    np.testing.assert_allclose(scored.weights[:, 1], single.weights, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------- ready-made targets
@pytest.fixture(scope="module")
def segmenter():
    keras.utils.set_random_seed(32)
    inp = keras.Input((12, 12, 3))
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="feat")(inp)
    return keras.Model(inp, L.Conv2D(3, 1, name="classifier")(a))


def test_a_region_target_is_the_class_logits_summed_over_the_mask(segmenter, rng):
    x = rng.random((3, 12, 12, 3), dtype=np.float32)
    explainer = tfg.GradCAM(segmenter)
    out = segmenter.predict(x, verbose=0)
    shared = np.zeros((12, 12), np.float32)
    shared[2:6, 3:9] = 1
    res = explainer(x, T.Region(1, shared))
    np.testing.assert_allclose(res.scores, (out[..., 1] * shared).sum(axis=(1, 2)), rtol=1e-4)
    np.testing.assert_array_equal(res.targets, [1, 1, 1])
    # the same as the callable it replaces
    fn = explainer(x, lambda o: tf.reduce_sum(o[..., 1] * shared, axis=(1, 2)))
    np.testing.assert_allclose(res.raw, fn.raw, rtol=1e-5, atol=1e-7)
    per_sample = rng.random((3, 12, 12)).astype(np.float32)
    each = explainer(x, T.Region(2, per_sample), batch_size=2)  # sliced with the batches
    np.testing.assert_allclose(each.scores, (out[..., 2] * per_sample).sum(axis=(1, 2)),
                               rtol=1e-4)


def test_another_value_of_the_same_kind_reuses_the_compiled_step(segmenter, rng):
    x = rng.random((2, 12, 12, 3), dtype=np.float32)
    explainer = tfg.GradCAM(segmenter)
    for cls in range(3):
        mask = (rng.random((12, 12)) > 0.5).astype(np.float32)
        explainer(x, T.Region(cls, mask))
    assert explainer.trace_count == 1
    explainer(x, T.Region(0, np.ones((2, 12, 12), np.float32)))  # per-sample masks: a new kind
    explainer(x, T.Region(1, np.ones((2, 12, 12), np.float32)))
    assert explainer.trace_count == 2


def test_output_regression_and_similarity_targets(rng):
    keras.utils.set_random_seed(33)
    inp = keras.Input((8, 8, 2))
    feats = L.GlobalAveragePooling2D()(L.Conv2D(5, 3, activation="relu", name="conv")(inp))
    model = keras.Model(inp, {"kind": L.Dense(3, activation="softmax", name="kind")(feats),
                              "age": L.Dense(1, name="age")(feats)})
    x = rng.random((3, 8, 8, 2), dtype=np.float32)
    out = model.predict(x, verbose=0)
    explainer = tfg.GradCAM(model, "conv")
    np.testing.assert_allclose(explainer(x, T.Output("age")).scores, out["age"][:, 0], rtol=1e-5)
    logits = keras.Model(inp, model.get_layer("kind").input).predict(x, verbose=0) @ \
        model.get_layer("kind").kernel.numpy() + model.get_layer("kind").bias.numpy()
    kind = explainer(x, T.Output("kind", 2))
    np.testing.assert_allclose(kind.scores, logits[:, 2], rtol=1e-4)  # the logit, not the prob
    np.testing.assert_array_equal(kind.targets, [2, 2, 2])
    with pytest.raises(ValueError, match="class_index="):
        explainer(x, T.Output("kind"))
    embed = keras.Model(inp, L.Dense(4, name="embedding")(feats))
    reference = rng.random(4).astype(np.float32)
    e = embed.predict(x, verbose=0)
    cosine = (e @ reference) / np.linalg.norm(e, axis=1) / np.linalg.norm(reference)
    np.testing.assert_allclose(tfg.GradCAM(embed, "conv")(x, T.Similarity(reference)).scores,
                               cosine, rtol=1e-5)
    np.testing.assert_allclose(tfg.GradCAM(embed, "conv")(x, T.Regression(3)).scores, e[:, 3],
                               rtol=1e-5)


def test_a_box_target_scores_the_best_matching_box(rng):
    """A toy detector with three fixed boxes: the class score of the best match plus its IoU."""
    keras.utils.set_random_seed(34)
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="feat")(inp)
    scores = L.Reshape((3, 2))(L.Dense(6, name="cls")(L.Flatten()(a)))
    model = keras.Model(inp, scores)
    anchors = tf.constant([[0, 0, 4, 4], [4, 4, 8, 8], [0, 4, 4, 8]], tf.float32)

    def decode(out):
        return tf.broadcast_to(anchors, [tf.shape(out)[0], 3, 4]), out

    x = rng.random((2, 8, 8, 1), dtype=np.float32)
    out = model.predict(x, verbose=0)
    res = tfg.GradCAM(model, "feat")(x, T.Box([4, 4, 8, 7], 1, decode=decode))
    iou = (4 * 3) / (4 * 4)  # the box [4, 4, 8, 7] inside anchor 1
    np.testing.assert_allclose(res.scores, out[:, 1, 1] + iou, rtol=1e-5)
    none = tfg.GradCAM(model, "feat")(x, T.Box([0, 0, 1, 1], 1, iou_threshold=0.5,
                                               decode=decode))
    np.testing.assert_array_equal(none.scores, [0, 0])


def test_keras_hub_retinanet_boxes_are_decoded_from_its_anchors(rng):
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is an optional test extra")
    keras.utils.set_random_seed(35)
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32, 32, 32], stackwise_num_blocks=[1] * 4,
        stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block", image_shape=(64, 64, 3))
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3,
                                                  max_level=5, use_p5=False,
                                                  image_shape=(64, 64, 3))
    detector = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=3, bounding_box_format="yxyx",
        pre_logits_num_conv_layers=1)
    explainer = tfg.GradCAM(detector)
    # the trunk every head of every pyramid level reads: the encoder's last stage
    assert explainer.layer_names.endswith("backbone/stack3_block0_out")
    x = rng.random((2, 64, 64, 3), dtype=np.float32)
    res = explainer(x, T.Box([8, 8, 40, 40], 2, iou_threshold=0.0))
    # against keras-hub's own decoding of the same outputs
    out = detector(x)
    anchors = keras.ops.concatenate(list(detector.anchor_generator(x).values()), axis=0)
    boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
        anchors=anchors, boxes_delta=out["bbox_regression"], encoded_format="center_xywh",
        anchor_format=detector.anchor_generator.bounding_box_format, box_format="yxyx",
        image_shape=(64, 64, 3))
    boxes = np.asarray(boxes, np.float64)
    logits = np.asarray(out["cls_logits"], np.float64)
    assert np.isfinite(boxes).all()
    target = np.array([8, 8, 40, 40], np.float32)
    inter = np.prod(np.clip(np.minimum(boxes[..., 2:], target[2:]) -
                            np.maximum(boxes[..., :2], target[:2]), 0, None), axis=-1)
    areas = np.prod(np.clip(boxes[..., 2:] - boxes[..., :2], 0, None), axis=-1)
    iou = inter / (areas + 32 * 32 - inter)
    best = iou.argmax(axis=1)
    expected = logits[np.arange(2), best, 2] + iou[np.arange(2), best]
    np.testing.assert_allclose(res.scores, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(res.weights).max() > 0 and explainer.trace_count == 1  # a gradient path
    explainer(x, T.Box([0, 0, 30, 30], 1, iou_threshold=0.0))
    assert explainer.trace_count == 1
