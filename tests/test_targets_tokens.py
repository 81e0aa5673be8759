"""Transformer tokens as targets: the layout inferred (ViT, DeiT, DINOv2, Swin-like), the maps
against an eager reference that reshapes the tokens by hand, the class-token trap detected and
avoided, keras-hub's encoders reached inside their composite layers, the model untouched."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg
from tf_gradcam.choose.tokens import layout

L = keras.layers
IMAGE, PATCH, DIM = 16, 4, 16  # a 4 x 4 patch grid


class PrefixTokens(L.Layer):
    """``n`` learned tokens put before the patch tokens (a class token, DeiT's two...)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = n

    def build(self, shape):
        self.tokens = self.add_weight(shape=(1, self.n, shape[-1]), initializer="random_normal")

    def call(self, x):
        batch = keras.ops.shape(x)[0]
        return keras.ops.concatenate([keras.ops.repeat(self.tokens, batch, axis=0), x], axis=1)


def tiny_vit(prefix=1, pooling="token", blocks=2, seed=11):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((IMAGE, IMAGE, 3))
    patches = L.Conv2D(DIM, PATCH, strides=PATCH, name="patchify")(inp)
    x = L.Reshape((-1, DIM), name="tokens")(patches)
    if prefix:
        x = PrefixTokens(prefix, name="prefix")(x)
    for i in range(blocks):
        h = L.LayerNormalization(name=f"ln1_{i}")(x)
        x = L.Add(name=f"res1_{i}")([x, L.MultiHeadAttention(2, DIM // 2, name=f"mha_{i}")(h, h)])
        h = L.LayerNormalization(name=f"ln2_{i}")(x)
        x = L.Add(name=f"res2_{i}")([x, L.Dense(DIM, activation="gelu", name=f"mlp_{i}")(h)])
    x = L.LayerNormalization(name="final_ln")(x)
    x = x[:, 0] if pooling == "token" else L.GlobalAveragePooling1D(name="mean")(x)
    return keras.Model(inp, L.Dense(4, name="head")(x))


def blocks_from(model, start, h):
    """The network from block ``start``'s first norm output ``h`` on, by hand (the block's
    input ``x`` read by a sub-model): what a reference needs at that tensor."""
    def rest(x_in, h_val):
        x = model.get_layer(f"res1_{start}")([x_in, model.get_layer(f"mha_{start}")(h_val, h_val)])
        x = model.get_layer(f"res2_{start}")(
            [x, model.get_layer(f"mlp_{start}")(model.get_layer(f"ln2_{start}")(x))])
        i = start + 1
        while True:
            try:
                ln1 = model.get_layer(f"ln1_{i}")
            except ValueError:
                break
            h2 = ln1(x)
            x = model.get_layer(f"res1_{i}")([x, model.get_layer(f"mha_{i}")(h2, h2)])
            x = model.get_layer(f"res2_{i}")([x, model.get_layer(f"mlp_{i}")(
                model.get_layer(f"ln2_{i}")(x))])
            i += 1
        return model.get_layer("final_ln")(x)
    return rest


def token_reference(model, block, pool, prefix, x, classes):
    """Grad-CAM at block ``block``'s first-norm output, tokens reshaped to the grid by hand."""
    x_in = keras.Model(model.inputs, model.get_layer(f"ln1_{block}").input)([x])
    h_model = keras.Model(model.inputs, model.get_layer(f"ln1_{block}").output)
    with tf.GradientTape() as tape:
        h = h_model([x])
        tape.watch(h)
        logits = model.get_layer("head")(pool(blocks_from(model, block, h)(x_in, h)))
        score = tf.gather(logits, classes, axis=1, batch_dims=1)
    grads = tape.gradient(score, h).numpy()[:, prefix:].reshape(len(x), 4, 4, DIM)
    acts = h.numpy()[:, prefix:].reshape(len(x), 4, 4, DIM)
    weights = grads.mean(axis=(1, 2))
    return np.maximum(np.einsum("nhwk,nk->nhw", acts, weights), 0)


@pytest.mark.parametrize("prefix", [1, 2])
def test_vit_and_deit_layouts_against_a_hand_reshaped_reference(prefix, rng):
    model = tiny_vit(prefix=prefix)
    x = rng.random((3, IMAGE, IMAGE, 3), dtype=np.float32)
    classes = np.array([0, 2, 3])
    explainer = tfg.GradCAM(model, "ln1_0")
    assert explainer.layer_ref.layout.prefix == prefix
    assert explainer.layer_ref.layout.grid == (4, 4)
    res = explainer(x, classes)
    expected = token_reference(model, 0, lambda t: t[:, 0], prefix, x, tf.constant(classes))
    assert expected.max() > 0
    np.testing.assert_allclose(res.raw, expected, rtol=1e-4, atol=1e-5 * expected.max())
    assert res.heatmaps.shape == (3, IMAGE, IMAGE)
    # layer=None avoids the class-token trap: the last block's first norm, where the patch
    # tokens still reach the class token through attention
    assert tfg.GradCAM(model).layer_names == "ln1_1"


def test_swin_like_mean_pooled_tokens_without_prefix(rng):
    model = tiny_vit(prefix=0, pooling="mean")
    x = rng.random((2, IMAGE, IMAGE, 3), dtype=np.float32)
    auto = tfg.GradCAM(model)
    assert auto.layer_names == "final_ln"  # mean pooling reads every token: no trap
    assert auto.layer_ref.layout.prefix == 0
    res = tfg.GradCAM(model, "ln1_1")(x, [1, 2])
    pool = model.get_layer("mean")
    expected = token_reference(model, 1, pool, 0, x, tf.constant([1, 2]))
    np.testing.assert_allclose(res.raw, expected, rtol=1e-4, atol=1e-5 * expected.max())


def test_the_class_token_trap_is_detected_and_named(rng):
    model = tiny_vit(prefix=1)
    x = rng.random((2, IMAGE, IMAGE, 3), dtype=np.float32)
    with pytest.warns(RuntimeWarning, match=r"prefix \(class\) token.*layer='ln1_1'"):
        res = tfg.GradCAM(model, "final_ln")(x)
    assert np.all(res.heatmaps == 0)  # exactly zero: only the class token reaches the score


def test_every_method_runs_on_token_targets(rng):
    model = tiny_vit(prefix=1, blocks=1)
    x = rng.random((2, IMAGE, IMAGE, 3), dtype=np.float32)
    for name, cls in sorted(tfg.METHODS.items()):
        if not cls.uses_layer or name == "cam":  # CAM needs a GAP -> Dense head
            continue
        res = cls(model, "ln1_0")(x, 1)
        assert res.raw.shape == (2, 4, 4) and res.heatmaps.shape == (2, IMAGE, IMAGE), name
        assert np.isfinite(res.heatmaps).all(), name


def test_explicit_and_callable_layouts(rng):
    model = tiny_vit(prefix=1)
    x = rng.random((2, IMAGE, IMAGE, 3), dtype=np.float32)
    inferred = tfg.GradCAM(model, "ln1_0")(x, 1)
    stated = tfg.GradCAM(model, "ln1_0", tokens=tfg.Tokens(prefix=1, grid=(4, 4)))(x, 1)
    by_hand = tfg.GradCAM(model, "ln1_0", tokens=lambda t: tf.reshape(t[:, 1:], (-1, 4, 4, DIM)))
    np.testing.assert_allclose(stated.raw, inferred.raw, rtol=1e-6)
    np.testing.assert_allclose(by_hand(x, 1).raw, inferred.raw, rtol=1e-6)
    with pytest.raises(ValueError, match=r"17 tokens.*not 2 prefix tokens \+ a 4x4 grid"):
        tfg.GradCAM(model, "ln1_0", tokens=tfg.Tokens(prefix=2, grid=(4, 4)))


def test_layout_inference():
    assert layout(197, (224, 224), None, "x").grid == (14, 14)
    assert (layout(198, (224, 224), None, "x").prefix, layout(261, (224, 224), None, "x").prefix,
            layout(49, (224, 224), None, "x").prefix) == (2, 5, 0)
    assert layout(33, (32, 64), None, "x").grid == (4, 8)  # a 2:1 image, patch 8
    assert layout(5, (16, 48), tfg.Tokens(grid=(1, 4)), "x").prefix == 1
    with pytest.raises(ValueError, match=r"unknown size.*tfg.Tokens"):
        layout(197, (None, None), None, "Layer 'x'")
    with pytest.raises(ValueError, match="do not form a patch grid"):
        layout(2, (16, 16), None, "x")  # one patch after any prefix: no grid
    with pytest.raises(ValueError, match="prefix"):
        tfg.Tokens(prefix=-1)


# ---------------------------------------------------------------------- keras-hub models
keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is an optional test extra "
                                "(installed by .ci/run with --no-deps beside tensorflow-cpu)")


def hub_vit(**kw):
    keras.utils.set_random_seed(12)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
        mlp_dim=64, **kw)
    return keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=5)


def test_keras_hub_vit_inner_block_against_the_encoder_run_by_hand(rng):
    model = hub_vit()
    encoder = model.backbone.get_layer("vit_encoder")
    explainer = tfg.GradCAM(model)
    last = encoder.encoder_layers[-1]
    assert explainer.layer_names.endswith(f"vit_encoder/{last.name})")
    assert explainer.layer_names.startswith("input_of(")
    assert explainer.layer_ref.layout.prefix == 1 and explainer.layer_ref.layout.grid == (4, 4)
    x = rng.random((2, 32, 32, 3), dtype=np.float32)
    res = explainer(x, [1, 3])
    # Reference: the encoder's own steps called by hand on the embeddings.
    embed = keras.Model(model.backbone.inputs, encoder.input)
    h = embed(x)
    for block in encoder.encoder_layers[:-1]:
        h = block(h)
    with tf.GradientTape() as tape:
        tape.watch(h)
        out = encoder.layer_norm(last(h))
        logits = model.output_dense(out[:, 0])
        score = tf.gather(logits, [1, 3], axis=1, batch_dims=1)
    grads = tape.gradient(score, h).numpy()[:, 1:].reshape(2, 4, 4, 32)
    acts = h.numpy()[:, 1:].reshape(2, 4, 4, 32)
    expected = np.maximum(np.einsum("nhwk,nk->nhw", acts, grads.mean(axis=(1, 2))), 0)
    assert expected.max() > 0
    np.testing.assert_allclose(res.raw, expected, rtol=1e-4, atol=1e-5 * expected.max())
    # named by path (as reported) the same tensor is found; the encoder is untouched
    again = tfg.GradCAM(model, explainer.layer_names)(x, [1, 3])
    np.testing.assert_array_equal(again.raw, res.raw)
    assert encoder.encoder_layers[-1] is last and "call" not in vars(last)


def test_keras_hub_deit_and_dinov2_layouts(rng):
    keras.utils.set_random_seed(13)
    deit = keras_hub.models.DeiTImageClassifier(
        backbone=keras_hub.models.DeiTBackbone(image_shape=(32, 32, 3), patch_size=8,
                                               num_layers=2, num_heads=2, hidden_dim=32,
                                               intermediate_dim=64), num_classes=3)
    ref = tfg.GradCAM(deit).layer_ref
    assert (ref.layout.prefix, ref.layout.grid) == (2, (4, 4))
    dino = keras_hub.models.DINOV2Backbone(
        patch_size=8, num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64,
        num_register_tokens=4, image_shape=(32, 32, 3), position_embedding_shape=(32, 32, 3))
    inp = dino.input
    model = keras.Model(inp, L.Dense(3)(dino(inp)[:, 0]))
    ref = tfg.GradCAM(model).layer_ref
    assert (ref.layout.prefix, ref.layout.grid) == (5, (4, 4))  # class + 4 registers
    x = {"images": rng.random((2, 32, 32, 3), dtype=np.float32)}
    res = tfg.GradCAM(model)(x, 0)
    assert res.heatmaps.shape == (2, 32, 32) and res.raw.max() > 0
