"""A faster input gradient for strided 2-D convolutions on TensorFlow on CPU.

TensorFlow's ``Conv2DBackpropInput`` is slow on CPU for strided convolutions
with many input channels and with very few (an image's 1 or 3: the first
layer, whose input gradient is every saliency map); benchmarks/RESULTS-saliency.md
has the measurements.

The input gradient of a stride-``s`` convolution splits into ``s * s``
independent stride-1 convolutions of the output gradient, one per phase
(row and column of the input modulo ``s``), each with the sub-kernel of the
taps that reach that phase, flipped (the polyphase decomposition of a
transposed convolution); ``depth_to_space`` interleaves the phases. Together
they do exactly the multiply-adds of the forward convolution, as plain
forward convolutions, which the CPU kernels do well. The result is the same
gradient up to float rounding (tests compare it with TensorFlow's own).

Three routes, by the layer:

- many input channels (at least :data:`MIN_CHANNELS`): one convolution per phase
  (:func:`input_gradient`); the sub-kernels are kept between calls (:class:`PhaseKernels`);
- a kernel as large as its stride (non-overlapping patches): one matrix product with the
  kernel as it lies spreads each output gradient over its patch;
- few input channels (at most :data:`MAX_MERGED_CHANNELS`): all phases as the output
  channels of one convolution (:func:`merged_input_gradient`; each phase's taps placed in
  a window common to all phases, zeros elsewhere), since a convolution with as few
  output channels as the input has does not use the CPU well.

:func:`linear` is a drop-in for the convolution and bias of a ``keras.layers.Conv2D``
whose input gradient takes one of these routes where :func:`accelerates` says so;
elsewhere TensorFlow's gradient is kept.
"""

from __future__ import annotations

import functools
import weakref

import keras

#: input channels from which the phase decomposition beats TensorFlow's gradient on CPU
MIN_CHANNELS = 128
#: input channels up to which the merged phases beat TensorFlow's gradient on CPU
MAX_MERGED_CHANNELS = 4


def accelerates(layer, input_shape) -> bool:
    """Whether :func:`linear` takes the phase route for ``layer`` on inputs of ``input_shape``."""
    if type(layer) is not keras.layers.Conv2D or keras.backend.backend() != "tensorflow" or tensorflow_sees_gpu():
        return False
    if layer.data_format != "channels_last" or layer.groups != 1 or tuple(layer.dilation_rate) != (1, 1):
        return False
    if layer.compute_dtype != layer.variable_dtype or getattr(layer, "quantization_mode", None):
        return False  # mixed precision and quantised kernels keep Keras' own call
    sh, sw = layer.strides
    if sh != sw or sh < 2 or len(input_shape) != 4:
        return False
    _, h, w, channels = input_shape
    if h is None or w is None or h % sh or w % sw:
        return False
    return channels >= MIN_CHANNELS or channels <= MAX_MERGED_CHANNELS


@functools.cache
def tensorflow_sees_gpu() -> bool:
    """TensorFlow sees a GPU: its cuDNN gradients are kept (the phase route is measured on CPU)."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def _axis(n: int, k: int, s: int, padding: str, rho: int):
    """For input positions ``s * a + rho`` (a < n / s): the first tap ``r``, the number of taps
    ``m`` (taps ``r, r + s, ...``) and the output-gradient index range ``[lo, hi]`` they read,
    with ``dx[s a + rho] = sum_j w[r + s j] dy[a + off - j]``."""
    if padding == "same":
        out = -(-n // s)
        pad_left = max((out - 1) * s + k - n, 0) // 2
    else:
        out, pad_left = (n - k) // s + 1, 0
    r, off = (rho + pad_left) % s, (rho + pad_left) // s
    m = len(range(r, k, s))
    return r, m, off - (m - 1), n // s - 1 + off, out


def _phase_kernels(kernel, stride):
    import tensorflow as tf

    return {(r_h, r_w): tf.transpose(kernel[r_h::stride, r_w::stride][::-1, ::-1], (0, 1, 3, 2))
            for r_h in range(min(stride, kernel.shape[0])) for r_w in range(min(stride, kernel.shape[1]))}


class PhaseKernels:
    """A layer's phase sub-kernels, kept between calls and remade when its kernel changes.

    Making them (slicing, flipping and transposing the kernel) took a quarter of a
    single sample's gradient on the paper's encoder, so they are kept in variables
    beside a copy of the kernel they were made from. Every call compares the kernel
    with that copy, element by element (reading both: under half the cost of remaking),
    and remakes them where anything differs: weights re-assigned in place (a
    randomisation check, training between calls) are used as they are.
    """

    def __init__(self, kernel, stride: int):
        import tensorflow as tf

        self.stride = stride
        with tf.init_scope():  # variables live outside any function being traced
            kernel = tf.convert_to_tensor(kernel)
            self.source = tf.Variable(kernel, trainable=False)
            self.subs = {k: tf.Variable(v, trainable=False) for k, v in _sub_kernels(kernel, stride).items()}

    def __call__(self, kernel):
        """The sub-kernel of each phase ``(r_h, r_w)`` of ``kernel``."""
        import tensorflow as tf

        def kept():
            return {k: v.read_value() for k, v in self.subs.items()}

        def remade():
            fresh = _sub_kernels(kernel, self.stride)
            writes = [self.source.assign(kernel)] + [self.subs[k].assign(v) for k, v in fresh.items()]
            with tf.control_dependencies(writes):
                return {k: tf.identity(v) for k, v in fresh.items()}

        return tf.cond(tf.reduce_all(tf.equal(kernel, self.source)), kept, remade)


#: layer -> its PhaseKernels
_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _sub_kernels(kernel, stride):
    """The flipped, transposed sub-kernel of each phase ``(r_h, r_w)``, made by XLA: TensorFlow's
    strided slices of a 5x5x256x512 kernel take ~60 ms on CPU (XLA: ~4 ms)."""
    return _xla_phase_kernels()(kernel, stride)


@functools.cache
def _xla_phase_kernels():
    import tensorflow as tf

    return tf.function(_phase_kernels, jit_compile=True, autograph=False)


def input_gradient(dy, kernel, input_shape, stride: int, padding: str, phase_kernels=None):
    """The gradient of ``sum(dy * conv2d(x, kernel))`` with respect to ``x`` (NHWC);
    ``phase_kernels``: a :class:`PhaseKernels` of ``kernel`` (made on the spot otherwise)."""
    import tensorflow as tf

    _, n_h, n_w, c_in = input_shape
    k_h, k_w = kernel.shape[0], kernel.shape[1]
    batch = tf.shape(dy)[0]
    if _patches(kernel.shape, stride):  # non-overlapping patches (no padding): dx[patch of o] = W dy[o],
        # one matrix product with the kernel as it lies (no sub-kernels to make; 3x faster than
        # the phases for a single sample, as fast for 64)
        h, w, c_out = n_h // stride, n_w // stride, kernel.shape[3]
        patches = tf.matmul(tf.reshape(kernel, (-1, c_out)), tf.reshape(dy, (-1, c_out)), transpose_b=True)
        patches = tf.reshape(patches, (stride, stride, c_in, batch, h, w))
        return tf.reshape(tf.transpose(patches, (3, 4, 0, 5, 1, 2)), (batch, n_h, n_w, c_in))
    subs = phase_kernels(kernel) if phase_kernels is not None else _sub_kernels(kernel, stride)
    phases = []
    for rho_h in range(stride):
        r_h, m_h, lo_h, hi_h, out_h = _axis(n_h, k_h, stride, padding, rho_h)
        for rho_w in range(stride):
            r_w, m_w, lo_w, hi_w, out_w = _axis(n_w, k_w, stride, padding, rho_w)
            if m_h == 0 or m_w == 0:  # no tap reaches this phase (kernel smaller than stride)
                phases.append(tf.zeros((batch, n_h // stride, n_w // stride, c_in), dy.dtype))
                continue
            if lo_h < 0 and lo_w < 0 and hi_h >= out_h - 1 and hi_w >= out_w - 1:
                window = dy  # the usual case: only zeros to add at the edges, which conv2d does
            else:
                window = dy[:, max(lo_h, 0):min(hi_h, out_h - 1) + 1, max(lo_w, 0):min(hi_w, out_w - 1) + 1]
            pads = [[0, 0], [max(-lo_h, 0), max(hi_h - out_h + 1, 0)], [max(-lo_w, 0), max(hi_w - out_w + 1, 0)],
                    [0, 0]]
            phases.append(tf.nn.conv2d(window, subs[(r_h, r_w)], 1, pads))
    return _interleave(tf.stack(phases, axis=3), stride)


def merged_input_gradient(dy, kernel, input_shape, stride: int, padding: str):
    """:func:`input_gradient` as one stride-1 convolution whose output channels are the phases'
    (phase ``(rho_h, rho_w)``: channels ``(rho_h * stride + rho_w) * c_in`` on), interleaved by
    ``depth_to_space``. Its kernel is gathered from ``kernel`` on every call (a first layer's
    is small)."""
    import tensorflow as tf

    _, n_h, n_w, c_in = input_shape
    k_h, k_w, _, c_out = kernel.shape
    rows, (crop_h, pad_h) = _merged_axis(n_h, k_h, stride, padding)
    cols, (crop_w, pad_w) = _merged_axis(n_w, k_w, stride, padding)
    # taps[t_h, t_w, phase]: the kernel tap (flat index) read at window offset (t_h, t_w), or the
    # zero tap past the last one
    taps = [[[rows[t_h][rho_h] * k_w + cols[t_w][rho_w] if rows[t_h][rho_h] >= 0 and cols[t_w][rho_w] >= 0
              else k_h * k_w for rho_h in range(stride) for rho_w in range(stride)]
             for t_w in range(len(cols))] for t_h in range(len(rows))]
    flat = tf.concat([tf.reshape(kernel, (k_h * k_w, c_in, c_out)), tf.zeros((1, c_in, c_out), kernel.dtype)], 0)
    merged = tf.transpose(tf.gather(flat, taps), (0, 1, 4, 2, 3))  # (t_h, t_w, c_out, phase, c_in)
    merged = tf.reshape(merged, (len(rows), len(cols), c_out, stride * stride * c_in))
    window = dy[:, crop_h[0]:tf.shape(dy)[1] - crop_h[1], crop_w[0]:tf.shape(dy)[2] - crop_w[1]]
    window = tf.pad(window, [[0, 0], pad_h, pad_w, [0, 0]])
    return _interleave(tf.nn.conv2d(window, merged, 1, "VALID"), stride)


def _interleave(phases, stride: int):
    """The input gradient from its phases ``(N, h, w, stride * stride [* c])`` (phase ``(rho_h,
    rho_w)`` at ``rho_h * stride + rho_w``): ``depth_to_space``, as one transpose (faster on CPU)."""
    import tensorflow as tf

    _, h, w = phases.shape[:3]
    c = phases.shape[-1] if phases.shape.rank == 5 else phases.shape[-1] // (stride * stride)
    split = tf.reshape(phases, (-1, h, w, stride, stride, c))
    return tf.reshape(tf.transpose(split, (0, 1, 3, 2, 4, 5)), (-1, h * stride, w * stride, c))


def _merged_axis(n: int, k: int, s: int, padding: str):
    """Along one axis: for each window offset ``t`` (output-gradient index ``a + d_min + t`` for
    input phase-position ``a``), the kernel tap each phase reads there (-1: none), and the
    (start, end) crop and (start, end) zero padding of the output gradient that make the
    window of every position ``a < n / s``."""
    reads = {}  # phase -> {offset d: tap}
    for rho in range(s):
        r, m, lo, _, out = _axis(n, k, s, padding, rho)
        off = lo + m - 1  # dx[s a + rho] = sum_j w[r + s j] dy[a + off - j]
        reads[rho] = {off - j: r + s * j for j in range(m)}
    offsets = [d for taps in reads.values() for d in taps]
    d_min, d_max = min(offsets), max(offsets)
    table = [[reads[rho].get(d, -1) for rho in range(s)] for d in range(d_min, d_max + 1)]
    first, last = d_min, n // s - 1 + d_max  # output-gradient rows the windows read
    return table, ((max(first, 0), max(out - 1 - last, 0)), (max(-first, 0), max(last - (out - 1), 0)))


def _patches(kernel_shape, stride: int) -> bool:
    """The kernel is as large as the stride: non-overlapping patches, no phase sub-kernels."""
    return kernel_shape[0] == kernel_shape[1] == stride


def linear(layer, x):
    """``layer``'s convolution of ``x`` plus its bias (no activation), with the
    phase-decomposed input gradient (the kernel gets no gradient: saliency differentiates
    the input only)."""
    import tensorflow as tf

    stride, padding = layer.strides[0], layer.padding
    input_shape = tuple(x.shape)
    merged = input_shape[-1] <= MAX_MERGED_CHANNELS and not _patches(layer.kernel.shape, stride)
    kept = None
    if not merged and not _patches(layer.kernel.shape, stride):
        if layer not in _KEPT:
            _KEPT[layer] = PhaseKernels(layer.kernel, stride)
        kept = _KEPT[layer]

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            if merged:
                return merged_input_gradient(dy, kernel, input_shape, stride, padding), None
            return input_gradient(dy, kernel, input_shape, stride, padding, kept), None

        return tf.nn.conv2d(x, kernel, stride, padding.upper()), grad

    y = conv(x, tf.convert_to_tensor(layer.kernel))
    return y + layer.bias if layer.use_bias else y
