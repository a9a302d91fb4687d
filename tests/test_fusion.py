"""The fuse math (tflm_kws.fusion) against TensorFlow's own convolutions."""
import numpy as np
import pytest
import tensorflow as tf

from tflm_kws import fusion


def _conv(x, kernel, strides=1, padding="SAME", depthwise=False):
    x = tf.constant(x, tf.float64)
    kernel = tf.constant(kernel, tf.float64)
    if depthwise:
        return tf.nn.depthwise_conv2d(x, kernel, [1, strides, strides, 1], padding).numpy()
    return tf.nn.conv2d(x, kernel, strides, padding).numpy()


def test_fold_batch_norm_matches_conv_then_bn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 5, 3))
    kernel, bias = rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4)
    gamma, beta, mean = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    var, eps = rng.uniform(0.1, 3, size=4), 1e-3
    expected = (_conv(x, kernel) + bias - mean) / np.sqrt(var + eps) * gamma + beta
    k, b = fusion.fold_batch_norm(kernel, bias, gamma, beta, mean, var, eps)
    np.testing.assert_allclose(_conv(x, k) + b, expected, rtol=1e-10, atol=1e-10)


def test_fold_batch_norm_depthwise_channel_order():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 5, 5, 3))
    kernel = rng.normal(size=(3, 3, 3, 2))  # depth_multiplier 2: output channel c*2 + q
    gamma, beta, mean = rng.normal(size=6), rng.normal(size=6), rng.normal(size=6)
    var = rng.uniform(0.1, 3, size=6)
    expected = (_conv(x, kernel, depthwise=True) - mean) / np.sqrt(var + 1e-3) * gamma + beta
    k, b = fusion.fold_batch_norm(kernel, None, gamma, beta, mean, var, 1e-3, depthwise=True)
    np.testing.assert_allclose(_conv(x, k, depthwise=True) + b, expected, rtol=1e-10, atol=1e-10)


def test_fold_batch_norm_without_scale_and_center():
    k, b = fusion.fold_batch_norm(np.ones((1, 1, 1, 2)), None, None, None, [1.0, 2.0],
                                  [3.0, 0.0], 1.0)
    np.testing.assert_allclose(k.ravel(), [0.5, 1.0])
    np.testing.assert_allclose(b, [-0.5, -2.0])


def test_fold_batch_norm_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="produces 3"):
        fusion.fold_batch_norm(np.ones((1, 1, 2, 3)), None, None, None, np.zeros(4), np.ones(4),
                               1e-3)


@pytest.mark.parametrize("small,big", [((3, 1), (7, 1)), ((1, 3), (3, 5)), ((2, 2), (4, 6))])
def test_centre_pad_keeps_kernel_in_the_middle(small, big):
    kernel = np.arange(np.prod(small), dtype=float).reshape(small + (1, 1)) + 1
    padded = fusion.centre_pad(kernel, big)
    top, left = (big[0] - small[0]) // 2, (big[1] - small[1]) // 2
    np.testing.assert_array_equal(padded[top:top + small[0], left:left + small[1]], kernel)
    assert padded.sum() == kernel.sum()


def test_centre_pad_rejects_off_centre_and_oversize():
    with pytest.raises(ValueError):
        fusion.centre_pad(np.ones((2, 1, 1, 1)), (3, 1))
    with pytest.raises(ValueError):
        fusion.centre_pad(np.ones((5, 1, 1, 1)), (3, 1))


@pytest.mark.parametrize("depthwise", [False, True])
def test_identity_kernel_is_identity(depthwise):
    x = np.random.default_rng(2).normal(size=(1, 6, 7, 4))
    kernel = fusion.identity_kernel((3, 5), 4, depthwise=depthwise)
    np.testing.assert_allclose(_conv(x, kernel, depthwise=depthwise), x, atol=1e-12)


def test_identity_kernel_needs_odd_size():
    with pytest.raises(ValueError):
        fusion.identity_kernel((2, 1), 3)


def test_collapse_expansion_equals_the_sequence():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 9, 4, 3))
    expand, kernel, project = (rng.normal(size=(1, 1, 3, 8)), rng.normal(size=(5, 3, 8, 6)),
                               rng.normal(size=(1, 1, 6, 2)))
    for strides, padding in [(1, "SAME"), (2, "SAME"), (1, "VALID")]:
        sequence = _conv(_conv(_conv(x, expand), kernel, strides, padding), project)
        fused = _conv(x, fusion.collapse_expansion(expand, kernel, project), strides, padding)
        np.testing.assert_allclose(fused, sequence, rtol=1e-10, atol=1e-10)


def test_sum_branches_is_linear_in_branches():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 8, 8, 2))
    branches = [(rng.normal(size=(3, 3, 2, 2)), rng.normal(size=2)),
                (rng.normal(size=(1, 3, 2, 2)), rng.normal(size=2)),
                (rng.normal(size=(1, 1, 2, 2)), rng.normal(size=2))]
    kernel, bias = fusion.sum_branches((3, 3), branches)
    assert kernel.dtype == np.float32 and kernel.shape == (3, 3, 2, 2)
    expected = sum(_conv(x, k) + b for k, b in branches)  # stride 1 'same': centres coincide
    np.testing.assert_allclose(_conv(x, kernel) + bias, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size,branches,identity,expected", [
    ((7, 1), [(7, 1), (5, 1), (3, 1), (1, 1)], True, None),
    ((4, 2), [(4, 2), (2, 2)], False, None),
    ((3, 3), [(3, 3), (2, 2)], False, "odd number"),
    ((4, 4), [(4, 4)], True, "identity"),
    ((3, 3), [(5, 3)], False, "larger than the fused kernel"),
])
def test_check_alignment(kernel_size, branches, identity, expected):
    reason = fusion.check_alignment(kernel_size, branches, identity)
    if expected is None:
        assert reason is None
    else:
        assert expected in reason
