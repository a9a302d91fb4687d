"""The fuse math of structural re-parameterization, in plain numpy.

Every function here works on kernels in the Keras layout of the layer that will run them:
  full conv       (kh, kw, in_channels, out_channels)
  depthwise conv  (kh, kw, in_channels, depth_multiplier); output channel c*depth_multiplier + q.
Arithmetic is float64 throughout (inputs of any float dtype, float64 out) and `sum_branches`, the
last step, rounds once to float32, so fusion adds no error of its own beyond that rounding.

Alignment rule (how branches of different sizes line up). A smaller kernel is embedded in the fused
kernel with the same number of zeros on both sides of each axis, so along every axis every branch
size must have the same parity as the fused size; the identity branch counts as a 1x1 kernel, so it
needs an odd fused size. This covers odd kernels (3 in 7) and all-even sets (2 in 4) alike; sets of
mixed parity (2 and 3) have no centred embedding and are rejected (`check_alignment`).

The fused layer is exact by construction, not by a padding coincidence: the training form
(`tflm_kws.layers`) pads its input exactly as the fused conv would ('same': TensorFlow's padding for
the fused kernel; 'valid': none) and runs each smaller branch with 'valid' padding on that padded
input cropped by dilation*(fused - branch)/2 on each side, i.e. on the window the fused kernel's
centred zero-padded copy of the branch would see. (Running each branch with its own 'same' padding
would not be equivalent: with stride 2 and an even input size TensorFlow pads a 3-tap kernel
(0, 1) but a 1-tap kernel (0, 0), which shifts the 1x1 branch by one sample.) With 'valid' padding
the smaller branches therefore see a centre crop of the input and every branch yields the fused
layer's output size.
"""
import numpy as np


def check_alignment(kernel_size, branch_sizes, identity):
    """Returns None if `branch_sizes` (+ identity) can be centred in `kernel_size`, else the reason."""
    kernel_size = tuple(kernel_size)
    named = [(f"branch {tuple(s)}", tuple(s)) for s in branch_sizes]
    if identity:
        named.append(("the identity branch (a centred 1x1 delta)", (1, 1)))
    for what, size in named:
        for axis in range(2):
            if size[axis] > kernel_size[axis]:
                return f"{what} is larger than the fused kernel {kernel_size}"
            if (kernel_size[axis] - size[axis]) % 2:
                return (f"{what} cannot be centred in the fused kernel {kernel_size}: along axis "
                        f"{axis} the sizes differ by an odd number (all sizes along an axis must "
                        f"be all odd or all even)")
    return None


def bn_scale_shift(gamma, beta, moving_mean, moving_variance, epsilon):
    """Inference-mode BatchNormalization as y = x*scale + shift (per channel, float64)."""
    moving_mean = np.asarray(moving_mean, np.float64)
    scale = 1.0 / np.sqrt(np.asarray(moving_variance, np.float64) + epsilon)
    if gamma is not None:
        scale = scale * np.asarray(gamma, np.float64)
    shift = -moving_mean * scale
    if beta is not None:
        shift = shift + np.asarray(beta, np.float64)
    return scale, shift


def fold_batch_norm(kernel, bias, gamma, beta, moving_mean, moving_variance, epsilon,
                    depthwise=False):
    """Folds an inference-mode BatchNormalization into the conv before it.

    kernel' = W * gamma/sqrt(var+eps); bias' = beta + (bias - mean) * gamma/sqrt(var+eps).
    `bias` may be None (bias-free conv); gamma/beta may be None (BN with scale/center off).
    """
    kernel = np.asarray(kernel, np.float64)
    scale, shift = bn_scale_shift(gamma, beta, moving_mean, moving_variance, epsilon)
    out_channels = scale.shape[0]
    produced = kernel.shape[2] * kernel.shape[3] if depthwise else kernel.shape[3]
    if produced != out_channels:
        raise ValueError(f"BatchNormalization has {out_channels} channels but the conv kernel "
                         f"{kernel.shape} produces {produced}")
    # Depthwise output channel c*depth_multiplier + q is kernel[..., c, q].
    per_output = scale.reshape(kernel.shape[2:]) if depthwise else scale
    bias = np.zeros(out_channels) if bias is None else np.asarray(bias, np.float64)
    return kernel * per_output, bias * scale + shift


def centre_pad(kernel, size):
    """Zero-pads `kernel` (kh, kw, ...) to spatial `size`, centred (see the module's alignment rule)."""
    kernel = np.asarray(kernel)
    pads = []
    for axis in range(2):
        extra = size[axis] - kernel.shape[axis]
        if extra < 0 or extra % 2:
            raise ValueError(f"kernel {kernel.shape[:2]} cannot be centred in {tuple(size)}")
        pads.append((extra // 2, extra // 2))
    return np.pad(kernel, pads + [(0, 0)] * (kernel.ndim - 2))


def identity_kernel(size, channels, depthwise=False):
    """The conv kernel of spatial `size` (odd) that maps a `channels`-channel input onto itself."""
    kh, kw = size
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"an identity kernel needs odd sizes, got {tuple(size)}")
    if depthwise:
        kernel = np.zeros((kh, kw, channels, 1))
        kernel[kh // 2, kw // 2, :, 0] = 1.0
    else:
        kernel = np.zeros((kh, kw, channels, channels))
        kernel[kh // 2, kw // 2] = np.eye(channels)
    return kernel


def collapse_expansion(expand_kernel, kernel, project_kernel):
    """Collapses a linear sequence 1x1 expand -> kxk -> 1x1 project (no bias, no activation).

    W[h, w, i, o] = sum_{a, b} E[i, a] K[h, w, a, b] P[b, o]. The 1x1 convs carry no bias: a bias
    before a zero-padded kxk conv would not reach the padded border, so it could not be folded into
    one conv exactly. A BatchNormalization after the whole sequence folds as usual (`fold_batch_norm`).
    """
    expand_kernel = np.asarray(expand_kernel, np.float64)
    project_kernel = np.asarray(project_kernel, np.float64)
    if expand_kernel.shape[:2] != (1, 1) or project_kernel.shape[:2] != (1, 1):
        raise ValueError("expand and project kernels must be 1x1")
    return np.einsum("ia,hwab,bo->hwio", expand_kernel[0, 0], np.asarray(kernel, np.float64),
                     project_kernel[0, 0])


def sum_branches(size, kernels_and_biases):
    """Sums folded branches (kernel, bias) after centring each kernel in the fused `size`."""
    total_kernel = total_bias = None
    for kernel, bias in kernels_and_biases:
        kernel = centre_pad(np.asarray(kernel, np.float64), size)
        bias = np.asarray(bias, np.float64)
        total_kernel = kernel if total_kernel is None else total_kernel + kernel
        total_bias = bias if total_bias is None else total_bias + bias
    if total_kernel is None:
        raise ValueError("no branches to sum")
    return total_kernel.astype(np.float32), total_bias.astype(np.float32)


def sub_band_affine(scale, shift, frequency_bins):
    """SubSpectralNorm's inference form as a 1x1 depthwise conv over the (frequency x channel)
    axis: (kernel (1, 1, F*C, 1), bias (F*C,)), float32.

    `scale`, `shift`: (sub_bands, channels), from `bn_scale_shift` of the per-(sub-band, channel)
    statistics. Sub-band s covers the F/sub_bands adjacent frequency bins from s*F/sub_bands on,
    and flattened channel f*C + c is frequency bin f, channel c (row-major (F, C)). A conv's
    weights are the same at every frequency, so a per-sub-band scale cannot fold into the conv
    before it; it stays one cheap per-position affine.
    """
    scale = np.asarray(scale, np.float64)
    shift = np.asarray(shift, np.float64)
    sub_bands, channels = scale.shape
    if shift.shape != scale.shape:
        raise ValueError(f"scale {scale.shape} and shift {shift.shape} differ in shape")
    if frequency_bins % sub_bands:
        raise ValueError(f"{frequency_bins} frequency bins do not split into {sub_bands} "
                         f"equal sub-bands")
    per_band = frequency_bins // sub_bands
    scale = np.repeat(scale, per_band, axis=0).reshape(-1)
    shift = np.repeat(shift, per_band, axis=0).reshape(-1)
    return (scale.reshape(1, 1, frequency_bins * channels, 1).astype(np.float32),
            shift.astype(np.float32))
