"""RepConv2D / RepDepthwiseConv2D: exact fusion over a seeded sweep, validation, serialization."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tflm_kws import RepConv2D, RepDepthwiseConv2D, seeding

NUM_SWEEP_CONFIGS = 64


def randomize_batch_norms(layer_or_model, rng):
    """Non-trivial BatchNorm statistics and affine parameters everywhere under `layer_or_model`."""
    for sub in layer_or_model._flatten_layers():
        if isinstance(sub, keras.layers.BatchNormalization):
            n = tuple(sub.moving_mean.shape)  # (C,), or broadcastable for a multi-axis norm
            sub.gamma.assign(rng.uniform(0.3, 2.0, n) * rng.choice([-1, 1], n))
            sub.beta.assign(rng.normal(0.0, 1.0, n))
            sub.moving_mean.assign(rng.normal(0.0, 1.0, n))
            sub.moving_variance.assign(rng.uniform(0.2, 3.0, n))


def _sizes_with_parity(limit, parity):
    return [s for s in range(1, limit + 1) if s % 2 == parity]


def random_config(rng):
    """A random valid Rep layer configuration and an input shape for it."""
    depthwise = bool(rng.integers(2))
    strides = tuple(int(s) for s in rng.choice([1, 2], 2))
    dilation = (1, 1)
    if strides == (1, 1) and rng.random() < 0.2:
        dilation = tuple(int(d) for d in rng.choice([1, 2], 2))
    even = [bool(rng.random() < 0.15) for _ in range(2)]
    kernel = tuple(int(rng.choice(_sizes_with_parity(7, 0 if e else 1))) for e in even)
    candidates = [(h, w) for h in _sizes_with_parity(kernel[0], kernel[0] % 2)
                  for w in _sizes_with_parity(kernel[1], kernel[1] % 2)]
    picks = rng.choice(len(candidates), size=int(rng.integers(1, min(4, len(candidates)) + 1)),
                       replace=False)
    branches = [candidates[i] for i in picks]
    if rng.random() < 0.8 and kernel not in branches:  # mostly the full kernel is a branch
        branches[0] = kernel
    identity = strides == (1, 1) and kernel[0] % 2 == 1 and kernel[1] % 2 == 1 and rng.random() < 0.6
    in_channels = int(rng.integers(1, 6))
    common = dict(strides=strides, padding=str(rng.choice(["same", "valid"])),
                  dilation_rate=dilation, branches=branches, identity=identity,
                  num_copies=int(rng.integers(1, 4)))  # linear: a ReLU could zero a whole output
    if depthwise:
        multiplier = 1 if identity else int(rng.integers(1, 3))
        layer_args = dict(kernel_size=kernel, depth_multiplier=multiplier, **common)
    else:
        filters = in_channels if identity else int(rng.integers(1, 7))
        expansion = [None, None, 0.5, 1.0, 2.0][int(rng.integers(5))]
        layer_args = dict(filters=filters, kernel_size=kernel, expansion=expansion, **common)
    min_size = [(kernel[a] - 1) * dilation[a] + 1 for a in range(2)]
    shape = (2, int(rng.integers(min_size[0], min_size[0] + 7)),
             int(rng.integers(min_size[1], min_size[1] + 7)), in_channels)
    return (RepDepthwiseConv2D if depthwise else RepConv2D), layer_args, shape


NAMED_CONFIGS = [  # the published branch sets, so the sweep always covers them
    (RepConv2D, dict(filters=6, kernel_size=(3, 3), branches=[(3, 3), (1, 3), (3, 1)],
                     identity=True), (2, 9, 8, 6)),                                    # ACNet
    (RepConv2D, dict(filters=8, kernel_size=(7, 1), branches=[(7, 1), (5, 1), (3, 1), (1, 1)],
                     identity=True, activation="relu"), (2, 49, 1, 8)),                 # RepCNN
    (RepConv2D, dict(filters=8, kernel_size=(7, 1), strides=(2, 1), branches=[
        (7, 1), (5, 1), (3, 1), (1, 1)]), (2, 48, 1, 5)),                # even length, stride 2
    (RepConv2D, dict(filters=4, kernel_size=(3, 3), branches=[(3, 3), (1, 1)], identity=True,
                     num_copies=3), (2, 8, 8, 4)),                              # MobileOne, K=3
    (RepConv2D, dict(filters=4, kernel_size=(5, 1), branches=[(5, 1), (1, 1)], expansion=4.0),
     (2, 12, 3, 6)),                                                            # ExpandNets
    (RepDepthwiseConv2D, dict(kernel_size=(1, 21), branches=[(1, 21), (1, 11), (1, 3)],
                              identity=True), (2, 5, 24, 4)),            # AudioRepInceptionNeXt
    (RepDepthwiseConv2D, dict(kernel_size=(7, 1), branches=[(7, 1), (5, 1), (3, 1)],
                              identity=True), (2, 25, 10, 4)),
    (RepDepthwiseConv2D, dict(kernel_size=(3, 3), strides=2, depth_multiplier=3,
                              branches=[(3, 3), (1, 1)], padding="valid"), (2, 10, 9, 2)),
    (RepConv2D, dict(filters=4, kernel_size=(3, 3), dilation_rate=(2, 1), branches=[
        (3, 3), (1, 3), (1, 1)], identity=True), (2, 11, 7, 4)),               # dilated, same
    (RepConv2D, dict(filters=5, kernel_size=(5, 1), dilation_rate=(1, 2), padding="valid",
                     branches=[(5, 1), (3, 1)]), (2, 12, 6, 3)),               # dilated, valid
    (RepDepthwiseConv2D, dict(kernel_size=(3, 3), dilation_rate=2, branches=[(3, 3), (1, 1)],
                              identity=True), (2, 9, 9, 3)),
]


def fused_relative_error(cls, layer_args, shape, rng):
    layer = cls(**layer_args)
    x = rng.normal(size=shape).astype(np.float32)
    layer(x)  # build
    randomize_batch_norms(layer, rng)
    multi = layer(x, training=False).numpy()
    deploy = layer.deploy_layer()
    deploy.build(shape)
    deploy.set_weights(list(layer.fused_kernel_and_bias()))
    fused = deploy(x).numpy()
    assert fused.shape == multi.shape
    assert deploy.name == layer.name
    assert np.max(np.abs(multi)) > 0
    return float(np.max(np.abs(fused - multi)) / np.max(np.abs(multi)))


def test_fused_equals_multi_branch_over_sweep(record_property):
    """Fused deploy conv == multi-branch training form (inference mode) over >= 50 configs."""
    seeding.set_seed(0)  # kernel initializers too: the reported number reproduces
    rng = np.random.default_rng(20241123)
    cases = NAMED_CONFIGS + [random_config(rng) for _ in range(NUM_SWEEP_CONFIGS)]
    worst, worst_case, failures = 0.0, None, []
    kinds = set()
    for cls, layer_args, shape in cases:
        error = fused_relative_error(cls, layer_args, shape, rng)
        kinds.add((cls.__name__, layer_args.get("strides", 1) != 1, layer_args.get("padding")))
        if error > worst:
            worst, worst_case = error, (cls.__name__, layer_args, shape)
        if not error <= 1e-5:
            failures.append((error, cls.__name__, layer_args, shape))
    record_property("worst_relative_fusion_error", worst)
    print(f"\nworst relative fusion error over {len(cases)} configs: {worst:.3g} at {worst_case}")
    assert not failures, failures
    # The sweep really spans full/depthwise x stride 1/2 x same/valid.
    assert {(c, s) for c, s, _ in kinds} >= {("RepConv2D", False), ("RepConv2D", True),
                                             ("RepDepthwiseConv2D", False),
                                             ("RepDepthwiseConv2D", True)}


@pytest.mark.parametrize("make,reason", [
    (lambda: RepConv2D(4, 3, strides=2, identity=True, name="bad_stride"), "strides 1"),
    (lambda: RepConv2D(4, 3, branches=[5], name="bad_big"), "larger than the fused kernel"),
    (lambda: RepConv2D(4, 3, branches=[3, 2], name="bad_parity"), "cannot be centred"),
    (lambda: RepConv2D(4, (4, 1), identity=True, name="bad_even_id"), "identity branch"),
    (lambda: RepConv2D(4, 3, strides=2, dilation_rate=2, name="bad_dil"), "dilation_rate"),
    (lambda: RepConv2D(4, 3, num_copies=0, name="bad_copies"), "num_copies"),
    (lambda: RepConv2D(4, 3, expansion=-1, name="bad_exp"), "expansion"),
    (lambda: RepConv2D(0, 3, name="bad_filters"), "filters"),
    (lambda: RepConv2D(4, 3, padding="causal", name="bad_pad"), "padding"),
    (lambda: RepConv2D(4, 3, branches=[], name="bad_empty"), "branches is empty"),
    (lambda: RepConv2D(4, (3, 0), name="bad_kernel"), "kernel_size"),
    (lambda: RepDepthwiseConv2D(3, depth_multiplier=2, identity=True, name="bad_dm"),
     "depth_multiplier 1"),
    (lambda: RepDepthwiseConv2D(3, strides=(1, 2), identity=True, name="bad_dw_stride"),
     "strides 1"),
])
def test_unfusable_configs_raise_at_construction(make, reason):
    with pytest.raises(ValueError, match=reason) as error:
        make()
    assert "'bad_" in str(error.value)  # names the layer


def test_identity_with_channel_change_raises_at_build():
    layer = RepConv2D(8, 3, identity=True, name="grows")
    with pytest.raises(ValueError, match="'grows'.*input channels == filters"):
        layer(np.zeros((1, 5, 5, 4), np.float32))


def test_branch_copies_start_different():
    layer = RepConv2D(4, 3, branches=[3], num_copies=2)
    layer(np.zeros((1, 5, 5, 2), np.float32))
    first, second = (convs[0].kernel.numpy() for convs in layer.branch_convs)
    assert not np.allclose(first, second)


def test_training_mode_uses_batch_statistics():
    rng = np.random.default_rng(5)
    layer = RepConv2D(3, 3, branches=[3, 1], identity=True)
    x = rng.normal(size=(4, 6, 6, 3)).astype(np.float32)
    layer(x)
    randomize_batch_norms(layer, rng)
    assert not np.allclose(layer(x, training=True).numpy(), layer(x, training=False).numpy())


def _model(rng):
    inputs = keras.Input((20, 6, 3))
    x = RepConv2D(5, (5, 3), branches=[(5, 3), (3, 1), (1, 3)], activation="relu",
                  num_copies=2, expansion=2.0, name="rep_a")(inputs)
    x = RepDepthwiseConv2D((3, 3), strides=2, depth_multiplier=2, branches=[(3, 3), (1, 1)],
                           name="rep_b")(x)
    x = RepConv2D(10, 3, branches=[3, 1], identity=True, padding="valid", name="rep_c")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(x))
    randomize_batch_norms(model, rng)
    return model


def test_get_config_round_trip():
    layer = RepConv2D(5, (5, 3), strides=(2, 1), padding="valid", branches=[(5, 3), (1, 1)],
                      num_copies=2, expansion=1.5, activation="relu", name="cfg")
    clone = RepConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    dw = RepDepthwiseConv2D((1, 5), depth_multiplier=2, branches=[(1, 5), (1, 3)], name="dw")
    assert RepDepthwiseConv2D.from_config(dw.get_config()).get_config() == dw.get_config()


def test_keras_file_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    model = _model(rng)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # registered classes: no custom_objects needed
    x = rng.normal(size=(3, 20, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(),
                                  model(x, training=False).numpy())
    for name in ("rep_a", "rep_b", "rep_c"):
        for got, want in zip(loaded.get_layer(name).fused_kernel_and_bias(),
                             model.get_layer(name).fused_kernel_and_bias()):
            np.testing.assert_array_equal(got, want)


def test_unknown_input_length_fuses_exactly():
    """'same' padding with stride 2 depends on the input length's parity; with a length only known
    at run time the training form computes it on the fly, for even and odd lengths alike."""
    rng = np.random.default_rng(7)
    inputs = keras.Input((None, 1, 4))
    layer = RepConv2D(3, (5, 1), strides=(2, 1), branches=[(5, 1), (3, 1), (1, 1)], name="stream")
    model = keras.Model(inputs, layer(inputs))
    randomize_batch_norms(model, rng)
    deploy = layer.deploy_layer()
    deploy.build((None, None, 1, 4))
    deploy.set_weights(list(layer.fused_kernel_and_bias()))
    # Traced once with an unknown length, so the padding really is computed at run time.
    multi_branch = tf.function(model, autograph=False,
                               input_signature=[tf.TensorSpec((None, None, 1, 4), tf.float32)])
    for length in (10, 11):
        x = rng.normal(size=(2, length, 1, 4)).astype(np.float32)
        multi = multi_branch(x).numpy()
        assert np.max(np.abs(deploy(x).numpy() - multi)) <= 1e-5 * np.max(np.abs(multi))


def _ssn_reference(x, frequency_bins, sub_bands, norm):
    """SubSpectralNorm in inference mode, written out: per (sub-band, channel) statistics."""
    frames, flat = x.shape[1], x.shape[3]
    channels = flat // frequency_bins
    view = x.reshape(len(x), frames, sub_bands, frequency_bins // sub_bands, channels)
    shape = (sub_bands, channels)
    mean, var = (np.asarray(v).reshape(shape)[None, None, :, None, :]
                 for v in (norm.moving_mean, norm.moving_variance))
    gamma, beta = (np.asarray(v).reshape(shape)[None, None, :, None, :]
                   for v in (norm.gamma, norm.beta))
    out = (view - mean) / np.sqrt(var + norm.epsilon) * gamma + beta
    return out.reshape(x.shape)


@pytest.mark.parametrize("frequency_bins,sub_bands,channels", [(20, 5, 3), (10, 2, 4), (5, 5, 2),
                                                               (8, 1, 3)])
def test_sub_spectral_norm_fuses_into_a_1x1_depthwise_conv(frequency_bins, sub_bands, channels):
    from tflm_kws import SubSpectralNorm
    from tflm_kws.reparameterize import reparameterize
    rng = np.random.default_rng(frequency_bins + sub_bands)
    inputs = keras.Input((7, 1, frequency_bins * channels))
    layer = SubSpectralNorm(frequency_bins, sub_bands, name="ssn")
    model = keras.Model(inputs, layer(inputs))
    randomize_batch_norms(model, rng)
    assert tuple(layer.norm.gamma.shape) == (1, 1, sub_bands, 1, channels)
    x = rng.normal(0.0, 1.0, (2, 7, 1, frequency_bins * channels)).astype(np.float32)
    expected = _ssn_reference(x, frequency_bins, sub_bands, layer.norm)
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
    fused = reparameterize(model)
    deploy = fused.get_layer("ssn")
    assert type(deploy) is keras.layers.DepthwiseConv2D and deploy.kernel_size == (1, 1)
    np.testing.assert_allclose(fused(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    # The statistics really are per sub-band: in training mode every (band, channel) group of the
    # batch comes out with mean beta, whatever the bands' own means.
    shifted = x + np.repeat(np.arange(sub_bands), frequency_bins // sub_bands).repeat(
        channels).astype(np.float32)
    out = layer(shifted, training=True).numpy().reshape(
        2, 7, sub_bands, frequency_bins // sub_bands, channels)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 3)),
                               layer.norm.beta.numpy().reshape(sub_bands, channels), atol=1e-4)


def test_sub_spectral_norm_rejects_bad_shapes():
    from tflm_kws import SubSpectralNorm
    with pytest.raises(ValueError, match="'bad': 10 frequency bins do not split into 3"):
        SubSpectralNorm(10, 3, name="bad")
    with pytest.raises(ValueError, match="not a multiple of frequency_bins=10"):
        SubSpectralNorm(10, 5, name="bad")(keras.Input((7, 1, 25)))
    with pytest.raises(ValueError, match="expects \\(batch, time, 1"):
        SubSpectralNorm(10, 5, name="bad")(keras.Input((7, 10, 2)))
