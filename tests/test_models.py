"""Model zoo: builds, fuses exactly, meets its budgets, converts to TFLM-supported ops only;
count_params_and_macs; the documented sizes are the computed ones."""
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tflm_kws import RepConv2D, models, reparameterize
from tflm_kws.complexity import count_params_and_macs
from tflm_kws.models.summary import docs_with_table, markdown_table
from test_layers import randomize_batch_norms

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "models.md"
INPUT_SHAPE = (49, 40, 1)
PLAIN_LAYERS = {"InputLayer", "Reshape", "Conv2D", "DepthwiseConv2D", "ReLU", "Activation",
                "Dropout", "AveragePooling2D", "Flatten", "Dense", "Add", "ZeroPadding2D"}
# Builtin ops the deploy graphs may use: all in TFLM's MicroMutableOpResolver.
TFLM_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE", "AVERAGE_POOL_2D",
            "ADD", "PAD"}


@pytest.fixture(scope="module")
def table():
    return {row["model"]: row for row in models.describe()}


def _fused(name, rng, **hparams):
    model = models.build(name, INPUT_SHAPE, 12, **hparams)
    randomize_batch_norms(model, rng)
    return model, reparameterize(model)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_model_fuses_exactly_into_plain_tflm_layers(name):
    rng = np.random.default_rng(0)
    model, fused = _fused(name, rng)
    assert model.output_shape == (None, 12)
    logits = model.layers[-1]
    assert isinstance(logits, keras.layers.Dense) and logits.get_config()["activation"] == "linear"
    assert {type(layer).__name__ for layer in fused.layers} <= PLAIN_LAYERS
    x = rng.normal(0.0, 0.5, size=(4,) + INPUT_SHAPE).astype(np.float32)
    multi = model(x, training=False).numpy()
    assert np.max(np.abs(fused(x).numpy() - multi)) <= 1e-5 * np.max(np.abs(multi))
    # Batch 1 (as conversion does): only compute ops, all of them in TFLM.
    function = tf.function(fused, autograph=False).get_concrete_function(
        tf.TensorSpec((1,) + INPUT_SHAPE, tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], fused)
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "FULLY_CONNECTED" in ops and ops <= TFLM_OPS, ops


@pytest.mark.parametrize("name", ["repcnn", "rep_inceptionnext"])
def test_budget(name, table):
    """The microcontroller budget: <= 1.0 M MACs (both), <= 30 k parameters (repcnn)."""
    assert table[name]["macs"] <= 1_000_000
    if name == "repcnn":
        assert table[name]["params"] <= 30_000


@pytest.mark.parametrize("hparams", [
    {},
    {"channels": 12, "strides": [2, 1, 1], "kernel_size": [5, 1], "branches": [[5, 1], [3, 1]],
     "num_copies": 2, "expansion": 2, "identity": True, "dropout": 0.0},
])
def test_cnn_is_exactly_repcnns_deploy_graph(hparams):
    rng = np.random.default_rng(1)
    _, fused = _fused("repcnn", rng, **hparams)
    twin_hparams = {k: v for k, v in hparams.items()
                    if k not in ("branches", "identity", "num_copies", "expansion")}
    twin = models.build("cnn", INPUT_SHAPE, 12, **twin_hparams)

    def signature(model):
        return [(type(layer).__name__, layer.name, layer.output_shape,
                 [w.shape for w in layer.get_weights()],
                 layer.get_config().get("activation"), layer.get_config().get("strides"))
                for layer in model.layers]

    assert signature(fused) == signature(twin)
    assert count_params_and_macs(fused) == count_params_and_macs(twin)


def test_rep_inceptionnext_single_branch_is_exactly_its_deploy_graph():
    """The ablation's twin (multi_branch=False) trains the default's fused graph directly; the
    paper's block: depthwise temporal conv, MLP (expand, project), residual addition."""
    rng = np.random.default_rng(2)
    _, fused = _fused("rep_inceptionnext", rng)
    twin = reparameterize(models.build("rep_inceptionnext", INPUT_SHAPE, 12, multi_branch=False))

    def signature(model):
        return [(type(layer).__name__, layer.output_shape, [w.shape for w in layer.get_weights()])
                for layer in model.layers]
    assert signature(fused) == signature(twin)
    kinds = [type(layer).__name__ for layer in fused.layers]
    block = kinds[kinds.index("DepthwiseConv2D"):kinds.index("Add") + 1]
    assert block == ["DepthwiseConv2D", "Conv2D", "Conv2D", "Add"] and kinds.count("Add") == 3
    with pytest.raises(ValueError, match="residual additions, which do not stream"):
        models.build("rep_inceptionnext", time_padding="valid")
    with pytest.raises(ValueError, match="layout must be one of"):
        models.build("rep_inceptionnext", layout="2d")


def test_repcnn_identity_only_where_shapes_allow():
    model = models.build("repcnn", INPUT_SHAPE, 12)
    identities = {layer.name: layer.identity for layer in model.layers
                  if isinstance(layer, RepConv2D)}
    # conv1 changes channels (40 -> 30), conv2 has stride 2.
    assert identities == {"conv1": False, "conv2": False, "conv3": True, "conv4": True}


def test_docstrings_and_docs_show_the_computed_sizes(table):
    for name, builder in models.MODELS.items():
        match = re.search(r"Deploy graph at the defaults: ([\d,]+) params, ([\d,]+) MACs\.",
                          builder.__doc__)
        assert match, f"{name}'s docstring does not state its deploy size"
        assert (int(match[1].replace(",", "")), int(match[2].replace(",", ""))) == (
            table[name]["params"], table[name]["macs"]), name
    text = DOCS.read_text()
    assert docs_with_table(text, markdown_table(list(table.values()))) == text, (
        "docs/models.md is stale: run python -m tflm_kws.models --docs=docs/models.md")


def test_build_rejects_unknown_names_and_hparams():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*bc_resnet, cnn, ds_cnn, "
                                         "rep_inceptionnext, repcnn, tiny_conv"):
        models.build("resnet")
    with pytest.raises(ValueError, match="'repcnn' has no hyper-parameter.*'width'"):
        models.build("repcnn", width=3)
    with pytest.raises(ValueError, match="'cnn' has no hyper-parameter.*'num_copies'"):
        models.build("cnn", num_copies=2)
    with pytest.raises(ValueError, match="'repcnn': strides"):
        models.build("repcnn", strides=[])
    with pytest.raises(ValueError, match="'tiny_conv': dropout"):
        models.build("tiny_conv", dropout=1.5)


def test_count_params_and_macs_from_shapes():
    inputs = keras.Input((8, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)                     # 8*6*4 * 3*3*2
    x = keras.layers.DepthwiseConv2D((3, 1), strides=2, depth_multiplier=2,
                                     padding="same")(x)                          # 4*3*8 * 3*1
    x = keras.layers.Conv2D(6, 1, groups=2)(x)                                 # 4*3*6 * 8/2
    x = keras.layers.AveragePooling2D((2, 3))(x)                               # 2*1*6 * 2*3
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.ReLU()(x)))  # 12 * 5
    expected = 8 * 6 * 4 * 18 + 4 * 3 * 8 * 3 + 4 * 3 * 6 * 4 + 2 * 1 * 6 * 6 + 12 * 5
    assert count_params_and_macs(model) == {"params": model.count_params(), "macs": expected}


def test_count_params_and_macs_needs_the_deploy_graph():
    model = models.build("repcnn", INPUT_SHAPE, 12)
    with pytest.raises(ValueError, match="'conv1' \\(RepConv2D\\).*reparameterize"):
        count_params_and_macs(model)
    with pytest.raises(ValueError, match="BatchNormalization"):
        count_params_and_macs(models.build("ds_cnn", INPUT_SHAPE, 12))


@pytest.mark.parametrize("hparams", [{"width": 3}, {"sub_bands": 1, "f1_activation": "swish"}])
def test_bc_resnet_variants_fuse_exactly(hparams):
    rng = np.random.default_rng(2)
    model, fused = _fused("bc_resnet", rng, **hparams)
    x = rng.normal(0.0, 0.5, size=(3,) + INPUT_SHAPE).astype(np.float32)
    multi = model(x, training=False).numpy()
    assert np.max(np.abs(fused(x).numpy() - multi)) <= 1e-5 * np.max(np.abs(multi))
    assert {type(layer).__name__ for layer in fused.layers} <= PLAIN_LAYERS


def test_bc_resnet_structure():
    """The paper's network: stem + [2, 2, 4, 4] blocks, broadcast residual in every block, identity
    residual in normal blocks only, one SubSpectralNorm per block, frequency 40 -> 20 -> 10 -> 5."""
    from tflm_kws import SubSpectralNorm
    model = models.build("bc_resnet", INPUT_SHAPE, 12)
    names = [layer.name for layer in model.layers]
    blocks = sorted({n.split("_")[0] + "_" + n.split("_")[1] for n in names
                     if n.startswith("stage")})
    assert [sum(b.startswith(f"stage{s}_") for b in blocks) for s in (1, 2, 3, 4)] == [2, 2, 4, 4]
    ssn = [layer for layer in model.layers if isinstance(layer, SubSpectralNorm)]
    assert len(ssn) == 12 and {layer.sub_bands for layer in ssn} == {5}
    assert [layer.frequency_bins for layer in ssn] == [20, 20, 10, 10, 5, 5, 5, 5, 5, 5, 5, 5]
    residuals = [n for n in names if n.endswith("_residual")]
    assert len(residuals) == 12 - 4  # the first block of each stage changes the channel count
    assert len([n for n in names if n.endswith("_broadcast")]) == 12
    # Broadcast: f1 is (time, 1, C) and is added over every frequency bin.
    add = model.get_layer("stage4_block4_broadcast")
    assert [tuple(s) for s in add.input_shape] == [(None, 49, 5, 20), (None, 49, 1, 20)]
    with pytest.raises(ValueError, match="do not split into sub_bands=3"):
        models.build("bc_resnet", INPUT_SHAPE, 12, sub_bands=3)
    with pytest.raises(ValueError, match="f1_activation"):
        models.build("bc_resnet", INPUT_SHAPE, 12, f1_activation="gelu")
