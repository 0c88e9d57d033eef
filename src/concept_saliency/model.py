"""The convolutional variational autoencoder of an architecture preset (:mod:`.presets`).

The encoder is a plain functional Keras model (stride-2 Conv2D blocks with
batch normalisation and ReLU, Flatten, Dense blocks, then two Dense heads
``z_mean`` and ``z_log_var``; the order of BN and ReLU is the preset's layout). It is saved on its own (``encoder.keras``) with standard
layers only, so the saliency stage, or any other tool, loads it in safe mode
without this package. Concept scores use the deterministic mean ``z_mean``.

The decoder mirrors the encoder with transposed convolutions and a sigmoid
output. :class:`VAE` ties both with the reparameterisation trick and the loss
of the paper: per-pixel binary cross-entropy (mean over pixels) plus
``kl_weight`` times the KL divergence (sum over latent dimensions).

Precision: ``build_vae(..., precision="mixed_bfloat16")`` builds the layers
under Keras' ``mixed_bfloat16`` policy (float32 weights, bfloat16 arithmetic)
except the output layer, which stays float32; the loss is computed in float32.
:func:`as_float32` rebuilds such a model in float32 with the same weights,
which is what is saved as the final model and encoder.
"""

from __future__ import annotations

import contextlib
import weakref

from .backend import require_keras_backend

require_keras_backend()

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

from .errors import ConfigError  # noqa: E402
from .presets import (  # noqa: E402, F401 (re-exported: the presets are part of the model's API)
    LAYOUTS,
    PRESETS,
    ArchitecturePreset,
    check_input_shape,
    get_preset,
    paper_kl_weight,
)


def _block(h, linear, name: str, batch_norm: bool, batch_norm_last: bool):
    """``linear`` (a Conv or Dense layer), then a ReLU, with batch normalisation before the ReLU,
    after it (``batch_norm_last``: the paper's order) or not at all (``batch_norm=False``).
    ``name`` is a pattern for the ReLU and BN layers, e.g. ``"enc_{kind}1"``."""
    h = linear(h)
    relu = layers.ReLU(name=name.format(kind="relu"))
    norm = layers.BatchNormalization(name=name.format(kind="bn")) if batch_norm else None
    for layer in ((relu, norm) if batch_norm_last else (norm, relu)):
        if layer is not None:
            h = layer(h)
    return h


def build_encoder(preset: ArchitecturePreset, input_shape: tuple[int, ...]) -> keras.Model:
    """Stride-2 conv blocks, Flatten, dense blocks, then the ``z_mean`` and ``z_log_var`` heads."""
    check_input_shape(preset, input_shape)
    layout = LAYOUTS[preset.layout]
    inputs = keras.Input(shape=input_shape, name="x")
    h = inputs
    for i, (filters, kernel) in enumerate(zip(preset.conv_filters, preset.conv_kernels), 1):
        conv = layers.Conv2D(filters, kernel, strides=2, padding="same", name=f"enc_conv{i}")
        h = _block(h, conv, f"enc_{{kind}}{i}", True, layout.batch_norm_last)
    h = layers.Flatten(name="enc_flatten")(h)
    for i, units in enumerate(preset.dense_units, 1):
        h = _block(h, layers.Dense(units, name=f"enc_dense{i}"), f"enc_dense_{{kind}}{i}",
                   layout.dense_batch_norm, layout.batch_norm_last)
    z_mean = layers.Dense(preset.latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(preset.latent_dim, name="z_log_var")(h)
    return keras.Model(inputs, [z_mean, z_log_var], name="encoder")


def _output_dtype():
    """The output layer's dtype policy: float32 under a mixed policy (float32 outputs and loss)."""
    policy = keras.config.dtype_policy()
    return "float32" if policy.compute_dtype != policy.variable_dtype else None


def build_decoder(preset: ArchitecturePreset, output_shape: tuple[int, ...]) -> keras.Model:
    """The encoder mirrored: latent -> projection -> transposed-conv blocks -> sigmoid image."""
    layout = LAYOUTS[preset.layout]
    h_out, w_out, channels = output_shape
    h0, w0 = h_out // preset.downsampling, w_out // preset.downsampling
    inputs = keras.Input(shape=(preset.latent_dim,), name="z")
    h = inputs
    if layout.decoder_dense:
        for i, units in enumerate(reversed(preset.dense_units), 1):
            h = layers.Dense(units, activation="relu", name=f"dec_dense{i}")(h)
    h = layers.Dense(h0 * w0 * preset.conv_filters[-1], activation="relu", name="dec_project")(h)
    h = layers.Reshape((h0, w0, preset.conv_filters[-1]), name="dec_reshape")(h)
    if layout.projection_batch_norm:
        h = layers.BatchNormalization(name="dec_bn0")(h)
    kernels = list(reversed(preset.conv_kernels))
    # the paper upsamples to full size in the blocks; csm's output layer makes the last step
    filters = list(reversed(preset.conv_filters if layout.stride1_output else preset.conv_filters[:-1]))
    for i, (f, k) in enumerate(zip(filters, kernels), 1):
        deconv = layers.Conv2DTranspose(f, k, strides=2, padding="same", name=f"dec_deconv{i}")
        h = _block(h, deconv, f"dec_{{kind}}{i}", True, layout.batch_norm_last)
    if layout.stride1_output:
        output = layers.Conv2D(channels, preset.conv_kernels[0], padding="same", activation="sigmoid",
                               name="reconstruction", dtype=_output_dtype())
    else:
        output = layers.Conv2DTranspose(channels, kernels[-1], strides=2, padding="same",
                                        activation="sigmoid", name="reconstruction",
                                        dtype=_output_dtype())
    return keras.Model(inputs, output(h), name="decoder")


@keras.saving.register_keras_serializable(package="concept_saliency")
class VAE(keras.Model):
    """Encoder + reparameterised sampling + decoder, trained with BCE + kl_weight * KL.

    Integer inputs (``uint8`` batches of :class:`~concept_saliency.data.loader.BatchLoader`
    with ``raw=True``) are images scaled by 1/255 here, on the accelerator.
    """

    def __init__(self, encoder: keras.Model, decoder: keras.Model, kl_weight: float,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.kl_weight = float(kl_weight)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.total_tracker = keras.metrics.Mean(name="loss")

    @staticmethod
    def _scaled(x):
        if "int" in keras.backend.standardize_dtype(x.dtype):
            return ops.cast(x, "float32") * (1.0 / 255.0)
        return x

    def call(self, x, training=False):
        x = self._scaled(x)
        z_mean, z_log_var = self.encoder(x, training=training)
        if training:
            eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator,
                                      dtype=z_mean.dtype)
            z = z_mean + ops.exp(0.5 * z_log_var) * eps
        else:
            z = z_mean
        return {"reconstruction": self.decoder(z, training=training),
                "z_mean": z_mean, "z_log_var": z_log_var}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        x = ops.cast(self._scaled(x), "float32")
        recon = ops.cast(y_pred["reconstruction"], "float32")
        eps = 1e-7
        r = ops.clip(recon, eps, 1 - eps)
        bce = -(x * ops.log(r) + (1 - x) * ops.log(1 - r))
        reconstruction = ops.mean(ops.mean(ops.reshape(bce, (ops.shape(bce)[0], -1)), axis=1))
        z_mean = ops.cast(y_pred["z_mean"], "float32")
        z_log_var = ops.cast(y_pred["z_log_var"], "float32")
        kl = ops.mean(-0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1))
        total = reconstruction + self.kl_weight * kl
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        self.total_tracker.update_state(total)
        return total

    @property
    def metrics(self):
        return [self.total_tracker, self.reconstruction_tracker, self.kl_tracker]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "kl_weight": self.kl_weight,
            "seed": self.seed,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)


PRECISIONS = ("float32", "mixed_bfloat16")


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Build layers under Keras' dtype policy ``precision``; the previous policy is restored."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"config key 'precision': {precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_vae(preset: ArchitecturePreset, input_shape: tuple[int, ...], seed: int | None = None,
              precision: str = "float32") -> VAE:
    with dtype_policy(precision):
        encoder = build_encoder(preset, input_shape)
        decoder = build_decoder(preset, input_shape)
        vae = VAE(encoder, decoder, preset.kl_weight, seed=seed, name=f"vae_{preset.name}")
        vae.build((None, *input_shape))
    return vae


def as_float32(vae: VAE, preset: ArchitecturePreset) -> VAE:
    """The same VAE (same weights) with float32 layers; ``vae`` itself if it is float32 already."""
    if all(layer.dtype_policy.name == "float32" for m in (vae.encoder, vae.decoder) for layer in m.layers):
        return vae
    out = build_vae(preset, tuple(vae.encoder.inputs[0].shape[1:]), seed=vae.seed)
    for src, dst in ((vae.encoder, out.encoder), (vae.decoder, out.decoder)):
        dst.set_weights(src.get_weights())
    return out


def latent_model(model: keras.Model, output: str | int | None = None) -> keras.Model:
    """A single-output model giving the latent used for concept scores.

    ``output`` names the encoder output (by its layer name, e.g. ``"z_mean"``,
    or by position). With ``None``: the only output, or ``z_mean`` when present.
    """
    outputs = model.outputs
    if len(outputs) == 1 and output in (None, 0, _output_name(outputs[0])):
        return model
    key = output
    cached = _LATENT_MODELS.get(model, {})
    if key in cached:  # the same sub-model each time: its compiled saliency functions are reused
        return cached[key]
    names = [_output_name(t) for t in outputs]
    if output is None:
        if "z_mean" not in names:
            raise ConfigError(
                f"model '{model.name}' has {len(outputs)} outputs ({', '.join(names)}); "
                f"say which one is the latent with 'latent_output'"
            )
        output = "z_mean"
    if isinstance(output, int):
        if not 0 <= output < len(outputs):
            raise ConfigError(f"model '{model.name}' has no output {output} (it has {len(outputs)})")
        idx = output
    elif output in names:
        idx = names.index(output)
    else:
        raise ConfigError(
            f"model '{model.name}' has no output named {output!r}; its outputs are {', '.join(names)}"
        )
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    latent = keras.Model(inputs, outputs[idx], name=f"{model.name}_{names[idx]}")
    _LATENT_MODELS.setdefault(model, {})[key] = latent
    return latent


_LATENT_MODELS: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def _output_name(tensor) -> str:
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history is not None else str(tensor.name)


def load_model(path, what: str = "model", compile: bool = False) -> keras.Model:
    """Load a ``.keras`` file in safe mode (no arbitrary code), with a clear error."""
    from pathlib import Path

    from .errors import InputDataError

    path = Path(path)
    if path.suffix != ".keras":
        raise InputDataError(f"{path}: {what} must be a Keras 3 '.keras' file")
    import zipfile

    if not path.is_file():
        raise InputDataError(f"{path}: {what} file not found")
    if not zipfile.is_zipfile(path):  # Keras itself would say "File not found" for these
        raise InputDataError(f"{path}: not a valid .keras file (not a zip archive: truncated or "
                             f"damaged); save or download the {what} again")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except ValueError as exc:
        msg = str(exc)
        if "Lambda" in msg or "safe_mode" in msg:
            raise InputDataError(
                f"{path}: refused by safe loading: the {what} contains a Lambda layer (arbitrary "
                f"Python code). Replace it with a registered custom layer, or re-save without it."
            ) from None
        raise InputDataError(f"{path}: cannot load the {what} ({msg.splitlines()[0]})") from None
    except (OSError, KeyError, EOFError) as exc:
        raise InputDataError(f"{path}: not a valid .keras file ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile and friends
        raise InputDataError(f"{path}: not a valid .keras file ({type(exc).__name__}: {exc})") from None
