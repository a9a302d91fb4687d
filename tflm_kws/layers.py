"""Re-parameterizable convolutions: trained as parallel branches, deployed as one plain conv.

Training form of `RepConv2D` / `RepDepthwiseConv2D`: parallel branches, each a bias-free conv
followed by BatchNormalization, plus an optional identity branch (BatchNormalization only); the
branch outputs are summed and the activation applied after the sum. Inference-mode BatchNorm is
affine and every branch is linear, so the sum is one conv with bias (`fused_kernel_and_bias`,
`deploy_layer`; the math is in `tflm_kws.fusion`). What a branch may be:
  - any kernel size that fits in the fused `kernel_size` and can be centred in it (see
    `tflm_kws.fusion` for the alignment rule): RepVGG [(3,3), (1,1)], ACNet [(3,3), (1,3), (3,1)],
    RepCNN temporal [(7,1), (5,1), (3,1), (1,1)], AudioRepInceptionNeXt [(1,21), (1,11), (1,3)];
  - `num_copies` K: MobileOne-style K independent copies of every conv branch;
  - `expansion` r (RepConv2D): ExpandNets-style linear sequence per branch,
    1x1 (in -> r*in) -> kxk (r*in -> r*out) -> 1x1 (r*out -> out), no bias or activation between.

Every configuration that cannot be fused raises ValueError when the layer is constructed (or, for
the input channel count, when it is built), naming the layer and the reason.
"""
import numbers

import tensorflow as tf
import tf_keras as keras

from tflm_kws import fusion


def _is_int(value, minimum):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _pair(value, what, layer_name):
    """Normalizes a positive int or a pair of positive ints to a tuple of 2 ints."""
    pair = (value, value) if _is_int(value, 1) else value
    if (isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2
            or not all(_is_int(v, 1) for v in pair)):
        raise ValueError(f"layer '{layer_name}': {what} must be a positive int or a pair of "
                         f"positive ints, got {value!r}")
    return (int(pair[0]), int(pair[1]))


def same_padding(size, kernel, stride):
    """TensorFlow's 'same' padding (before, after) along one axis; `size` int or scalar tensor."""
    out = -(-size // stride)
    total = (out - 1) * stride + kernel - size
    total = max(total, 0) if isinstance(total, int) else tf.maximum(total, 0)
    return total // 2, total - total // 2


class _RepConvBase(keras.layers.Layer):
    """What RepConv2D and RepDepthwiseConv2D share: branches, alignment, padding/cropping, fusing."""

    _depthwise = False

    def __init__(self, kernel_size, strides=1, padding="same", dilation_rate=1, branches=None,
                 identity=False, activation=None, num_copies=1, bn_momentum=0.99,
                 bn_epsilon=1e-3, kernel_initializer="glorot_uniform", kernel_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        name = self.name
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.strides = _pair(strides, "strides", name)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate", name)
        if not isinstance(padding, str) or padding.lower() not in ("same", "valid"):
            raise ValueError(f"layer '{name}': padding must be 'same' or 'valid', got {padding!r}")
        self.padding = padding.lower()
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"layer '{name}': strides {self.strides} and dilation_rate "
                             f"{self.dilation_rate} cannot both be > 1 (TensorFlow's conv "
                             f"does not support it)")
        if branches is None:
            branches = [self.kernel_size]
        if isinstance(branches, (str, bytes)) or not hasattr(branches, "__iter__"):
            raise ValueError(f"layer '{name}': branches must be a list of kernel sizes, "
                             f"got {branches!r}")
        self.branches = [_pair(b, "every entry of branches", name) for b in branches]
        if not self.branches:
            raise ValueError(f"layer '{name}': branches is empty; at least one conv branch is needed")
        self.identity = bool(identity)
        if self.identity and self.strides != (1, 1):
            raise ValueError(f"layer '{name}': an identity branch needs strides 1, got "
                             f"{self.strides} (the output would be a subsampled input)")
        reason = fusion.check_alignment(self.kernel_size, self.branches, self.identity)
        if reason:
            raise ValueError(f"layer '{name}': {reason}")
        if not _is_int(num_copies, 1):
            raise ValueError(f"layer '{name}': num_copies must be an int >= 1, got {num_copies!r}")
        self.num_copies = int(num_copies)
        self.activation = keras.activations.get(activation)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _create_branches(self):
        """Makes the branch sublayers; subclasses call it at the end of __init__ (not in build, so
        that saved weights map back onto the same sublayer paths when a model is loaded)."""
        self.branch_sizes = [size for size in self.branches for _ in range(self.num_copies)]
        # Flat lists of layers: Keras' .keras format saves layers in lists, not in nested lists.
        self.expand_convs, self.spatial_convs, self.project_convs = [], [], []
        self.branch_norms = []
        for i, size in enumerate(self.branch_sizes):
            prefix = f"branch{i}_{size[0]}x{size[1]}"
            expand, spatial, project = self._make_branch_convs(prefix, size)
            if expand is not None:
                self.expand_convs.append(expand)
                self.project_convs.append(project)
            self.spatial_convs.append(spatial)
            self.branch_norms.append(self._make_norm(f"{prefix}_bn"))
        self.identity_norm = self._make_norm("identity_bn") if self.identity else None

    @property
    def branch_convs(self):
        """Per branch, its convs in order: [spatial] or [expand 1x1, spatial, project 1x1]."""
        if self.expand_convs:
            return [list(convs) for convs in
                    zip(self.expand_convs, self.spatial_convs, self.project_convs)]
        return [[conv] for conv in self.spatial_convs]

    def _new_initializer(self):
        # A fresh instance per conv: one unseeded instance called twice returns the same values,
        # which would start every copy of a branch identical.
        return keras.initializers.deserialize(keras.initializers.serialize(self.kernel_initializer))

    def _make_norm(self, name):
        return keras.layers.BatchNormalization(momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                                               name=name)

    def _make_branch_convs(self, prefix, size):
        """(expand 1x1 or None, spatial conv, project 1x1 or None) of one branch."""
        raise NotImplementedError

    def _out_channels(self, in_channels):
        raise NotImplementedError

    def _check_in_channels(self, in_channels):
        """Raises ValueError if this layer cannot take `in_channels` input channels."""

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4:
            raise ValueError(f"layer '{self.name}' expects a 4-D (batch, height, width, channels) "
                             f"input, got shape {input_shape}")
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(f"layer '{self.name}': the input channel count must be known")
        self._check_in_channels(in_channels)
        out_channels = self._out_channels(in_channels)
        for convs, norm in zip(self.branch_convs, self.branch_norms):
            channels = in_channels
            for conv in convs:
                conv.build(tf.TensorShape([None, None, None, channels]))
                channels = channels * self.depth_multiplier if self._depthwise else conv.filters
            norm.build(tf.TensorShape([None, None, None, out_channels]))
        if self.identity_norm is not None:
            self.identity_norm.build(tf.TensorShape([None, None, None, in_channels]))
        self.in_channels = int(in_channels)
        super().build(input_shape)

    def _fused_padding(self, inputs):
        """(top, bottom, left, right) padding of the fused conv for this input."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        pads = []
        for axis in range(2):
            size = inputs.shape[1 + axis]
            if size is None:
                size = tf.shape(inputs)[1 + axis]
            effective = (self.kernel_size[axis] - 1) * self.dilation_rate[axis] + 1
            pads.extend(same_padding(size, effective, self.strides[axis]))
        return tuple(pads)

    def _crop(self, padded, size):
        """The window of `padded` that a branch of `size` centred in the fused kernel sees."""
        crops = [self.dilation_rate[a] * (self.kernel_size[a] - size[a]) // 2 for a in range(2)]
        if crops == [0, 0]:
            return padded
        return padded[:, crops[0]:(-crops[0] or None), crops[1]:(-crops[1] or None), :]

    def call(self, inputs, training=None):
        pads = self._fused_padding(inputs)
        if all(isinstance(p, int) and p == 0 for p in pads):
            padded = inputs
        else:
            padded = tf.pad(inputs, [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]])
        total = None
        for size, convs, norm in zip(self.branch_sizes, self.branch_convs, self.branch_norms):
            y = self._crop(padded, size)
            for conv in convs:
                y = conv(y)
            y = norm(y, training=training)
            total = y if total is None else total + y
        if self.identity_norm is not None:
            total = total + self.identity_norm(self._crop(padded, (1, 1)), training=training)
        return self.activation(total)

    def compute_output_shape(self, input_shape):
        return self.deploy_layer().compute_output_shape(input_shape)

    def _branch_kernel(self, convs):
        """The branch's convs collapsed into one kernel (numpy, float64)."""
        raise NotImplementedError

    def fused_kernel_and_bias(self):
        """(kernel, bias) of the plain deploy conv, float32, in its Keras layout."""
        if not self.built:
            raise ValueError(f"layer '{self.name}' is not built yet; call it on an input first")
        folded = []
        for convs, norm in zip(self.branch_convs, self.branch_norms):
            folded.append(self._fold(self._branch_kernel(convs), norm))
        if self.identity_norm is not None:
            kernel = fusion.identity_kernel((1, 1), self.in_channels, depthwise=self._depthwise)
            folded.append(self._fold(kernel, self.identity_norm))
        return fusion.sum_branches(self.kernel_size, folded)

    def _fold(self, kernel, norm):
        return fusion.fold_batch_norm(
            kernel, None, None if norm.gamma is None else norm.gamma.numpy(),
            None if norm.beta is None else norm.beta.numpy(), norm.moving_mean.numpy(),
            norm.moving_variance.numpy(), norm.epsilon, depthwise=self._depthwise)

    def deploy_layer(self):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "branches": [list(b) for b in self.branches],
            "identity": self.identity,
            "activation": keras.activations.serialize(self.activation),
            "num_copies": self.num_copies,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config


@keras.saving.register_keras_serializable(package="tflm_kws")
class RepConv2D(_RepConvBase):
    """Multi-branch Conv2D that fuses into one `Conv2D(filters, kernel_size, ...)` with bias.

    Args:
      filters: output channels.
      kernel_size: the fused (deploy) kernel size; every branch must fit in it, centred.
      strides, padding ('same' or 'valid'), dilation_rate: those of the fused conv; every branch
        uses them (see `tflm_kws.fusion` for what a smaller branch sees).
      branches: list of branch kernel sizes; default [kernel_size].
      identity: add a BatchNorm-only identity branch (needs strides 1 and in channels == filters).
      activation: applied after the sum.
      num_copies: K copies of every conv branch (MobileOne).
      expansion: None, or r > 0: each conv branch is the linear sequence (ExpandNets)
        1x1 (in -> m) -> kxk (m -> m) -> 1x1 (m -> filters), m = max(1, round(r*filters)); the
        width follows filters (not the input) so every sublayer exists before the layer is built.
      bn_momentum, bn_epsilon: of every branch's BatchNormalization.
      kernel_initializer, kernel_regularizer: of every branch conv.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="same", dilation_rate=1,
                 branches=None, identity=False, activation=None, num_copies=1, expansion=None,
                 **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding,
                         dilation_rate=dilation_rate, branches=branches, identity=identity,
                         activation=activation, num_copies=num_copies, **kwargs)
        if not _is_int(filters, 1):
            raise ValueError(f"layer '{self.name}': filters must be an int >= 1, got {filters!r}")
        if expansion is not None and (not isinstance(expansion, numbers.Real)
                                      or isinstance(expansion, bool) or not expansion > 0):
            raise ValueError(f"layer '{self.name}': expansion must be None or a number > 0, "
                             f"got {expansion!r}")
        self.filters = int(filters)
        self.expansion = None if expansion is None else float(expansion)
        self._create_branches()

    def _conv(self, name, filters, size, strides=1, dilation_rate=1):
        return keras.layers.Conv2D(filters, size, strides=strides, padding="valid",
                                   dilation_rate=dilation_rate, use_bias=False,
                                   kernel_initializer=self._new_initializer(),
                                   kernel_regularizer=self.kernel_regularizer, name=name)

    def _make_branch_convs(self, prefix, size):
        spatial = dict(size=size, strides=self.strides, dilation_rate=self.dilation_rate)
        if self.expansion is None:
            return None, self._conv(f"{prefix}_conv", self.filters, **spatial), None
        width = max(1, round(self.expansion * self.filters))
        return (self._conv(f"{prefix}_expand", width, (1, 1)),
                self._conv(f"{prefix}_conv", width, **spatial),
                self._conv(f"{prefix}_project", self.filters, (1, 1)))

    def _check_in_channels(self, in_channels):
        if self.identity and in_channels != self.filters:
            raise ValueError(f"layer '{self.name}': an identity branch needs input channels == "
                             f"filters, got {in_channels} input channels and {self.filters} filters")

    def _out_channels(self, in_channels):
        return self.filters

    def _branch_kernel(self, convs):
        kernels = [conv.kernel.numpy() for conv in convs]
        if len(kernels) == 1:
            return kernels[0]
        return fusion.collapse_expansion(*kernels)

    def deploy_layer(self):
        return keras.layers.Conv2D(self.filters, self.kernel_size, strides=self.strides,
                                   padding=self.padding, dilation_rate=self.dilation_rate,
                                   activation=self.activation, use_bias=True, name=self.name)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "expansion": self.expansion})
        return config


@keras.saving.register_keras_serializable(package="tflm_kws")
class RepDepthwiseConv2D(_RepConvBase):
    """Multi-branch DepthwiseConv2D that fuses into one `DepthwiseConv2D` with bias.

    Arguments as `RepConv2D` (no filters, no expansion) plus depth_multiplier; an identity branch
    needs depth_multiplier 1 (otherwise the channel count changes).
    """

    _depthwise = True

    def __init__(self, kernel_size, strides=1, padding="same", depth_multiplier=1,
                 dilation_rate=1, branches=None, identity=False, activation=None, num_copies=1,
                 **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding,
                         dilation_rate=dilation_rate, branches=branches, identity=identity,
                         activation=activation, num_copies=num_copies, **kwargs)
        if not _is_int(depth_multiplier, 1):
            raise ValueError(f"layer '{self.name}': depth_multiplier must be an int >= 1, "
                             f"got {depth_multiplier!r}")
        if self.identity and depth_multiplier != 1:
            raise ValueError(f"layer '{self.name}': an identity branch needs depth_multiplier 1, "
                             f"got {depth_multiplier} (the channel count would change)")
        self.depth_multiplier = int(depth_multiplier)
        self._create_branches()

    def _make_branch_convs(self, prefix, size):
        return None, keras.layers.DepthwiseConv2D(
            size, strides=self.strides, padding="valid", depth_multiplier=self.depth_multiplier,
            dilation_rate=self.dilation_rate, use_bias=False,
            depthwise_initializer=self._new_initializer(),
            depthwise_regularizer=self.kernel_regularizer, name=f"{prefix}_dwconv"), None

    def _out_channels(self, in_channels):
        return in_channels * self.depth_multiplier

    def _branch_kernel(self, convs):
        return convs[0].depthwise_kernel.numpy()

    def deploy_layer(self):
        return keras.layers.DepthwiseConv2D(
            self.kernel_size, strides=self.strides, padding=self.padding,
            depth_multiplier=self.depth_multiplier, dilation_rate=self.dilation_rate,
            activation=self.activation, use_bias=True, name=self.name)

    def get_config(self):
        config = super().get_config()
        config["depth_multiplier"] = self.depth_multiplier
        return config


@keras.saving.register_keras_serializable(package="tflm_kws")
class SubSpectralNorm(keras.layers.Layer):
    """SubSpectralNorm (Chang et al. 2021, used by BC-ResNet): BatchNorm whose statistics and
    affine parameters are per (frequency sub-band, channel) instead of per channel.

    Works on the flattened view (batch, time, 1, F * C) of a (time, F, C) feature map (flattened
    channel f*C + c), because its deploy form is then one builtin layer: a 1x1 `DepthwiseConv2D`
    with bias over F*C channels (`deploy_layer`, weights from `fused_kernel_and_bias`, math in
    `tflm_kws.fusion.sub_band_affine`). The model reshapes (time, F, C) -> (time, 1, F*C) before
    and back after. Sub-band s is the F/sub_bands adjacent bins from s*F/sub_bands.
    """

    def __init__(self, frequency_bins, sub_bands=5, momentum=0.99, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(frequency_bins, 1) or not _is_int(sub_bands, 1):
            raise ValueError(f"layer '{self.name}': frequency_bins and sub_bands must be ints "
                             f">= 1, got {frequency_bins!r}, {sub_bands!r}")
        if frequency_bins % sub_bands:
            raise ValueError(f"layer '{self.name}': {frequency_bins} frequency bins do not split "
                             f"into {sub_bands} equal sub-bands")
        self.frequency_bins = int(frequency_bins)
        self.sub_bands = int(sub_bands)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        # Axes of the (batch, time, sub_bands, bins per band, channels) view: one statistic per
        # (sub-band, channel), pooled over batch, time and the bins of the band.
        self.norm = keras.layers.BatchNormalization(axis=[2, 4], momentum=momentum,
                                                    epsilon=epsilon, name="norm")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[2] != 1 or input_shape[-1] is None:
            raise ValueError(f"layer '{self.name}': expects (batch, time, 1, frequency_bins * "
                             f"channels), got {tuple(input_shape)}")
        if input_shape[-1] % self.frequency_bins:
            raise ValueError(f"layer '{self.name}': {input_shape[-1]} flattened channels are not "
                             f"a multiple of frequency_bins={self.frequency_bins}")
        self.channels = int(input_shape[-1]) // self.frequency_bins
        self.norm.build((None, None, self.sub_bands, self.frequency_bins // self.sub_bands,
                         self.channels))
        super().build(input_shape)

    def call(self, inputs, training=None):
        shape = tf.shape(inputs)
        x = tf.reshape(inputs, [shape[0], shape[1], self.sub_bands,
                                self.frequency_bins // self.sub_bands, self.channels])
        return tf.reshape(self.norm(x, training=training), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def fused_kernel_and_bias(self):
        """(depthwise kernel (1, 1, F*C, 1), bias (F*C,)) of the deploy layer, float32."""
        if not self.built:
            raise ValueError(f"layer '{self.name}' is not built yet; call it on an input first")
        norm = self.norm
        scale, shift = fusion.bn_scale_shift(norm.gamma.numpy(), norm.beta.numpy(),
                                             norm.moving_mean.numpy(),
                                             norm.moving_variance.numpy(), norm.epsilon)
        # Keras keeps multi-axis BatchNorm parameters broadcastable ((1, 1, S, 1, C)): to (S, C).
        shape = (self.sub_bands, self.channels)
        return fusion.sub_band_affine(scale.reshape(shape), shift.reshape(shape),
                                      self.frequency_bins)

    def deploy_layer(self):
        return keras.layers.DepthwiseConv2D((1, 1), use_bias=True, name=self.name)

    def get_config(self):
        config = super().get_config()
        config.update({"frequency_bins": self.frequency_bins, "sub_bands": self.sub_bands,
                       "momentum": self.momentum, "epsilon": self.epsilon})
        return config
