"""Architecture presets: what the VAE of each preset looks like, without building it.

Light on purpose (no Keras): the workflow checks a dataset's image or grid size
against its presets' downsampling while it builds the DAG. The schema's list of
preset names is checked against :data:`PRESETS` by a test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Layout:
    """The structural choices that tell this package's VAE from the paper's.

    ``"csm"``: Conv -> BN -> ReLU blocks, Dense -> ReLU; the decoder mirrors the encoder's
    dense layers and its last transposed convolution is the output. ``"brocki2019"``, the
    layout of the paper's CelebA notebook: Conv -> ReLU -> BN, Dense -> ReLU -> BN; the
    decoder's projection is followed by BN, there is one transposed convolution (-> ReLU ->
    BN) per encoder convolution, then a stride-1 Conv2D output.
    """

    batch_norm_last: bool  # BN after the activation (the paper) rather than before it
    dense_batch_norm: bool  # BN in the encoder's dense blocks
    decoder_dense: bool  # the decoder mirrors the encoder's dense layers
    projection_batch_norm: bool  # BN after the decoder's projection
    stride1_output: bool  # a transposed conv per encoder conv, then a stride-1 output conv


LAYOUTS = {
    "csm": Layout(batch_norm_last=False, dense_batch_norm=False, decoder_dense=True,
                  projection_batch_norm=False, stride1_output=False),
    "brocki2019": Layout(batch_norm_last=True, dense_batch_norm=True, decoder_dense=False,
                         projection_batch_norm=True, stride1_output=True),
}


@dataclass(frozen=True)
class ArchitecturePreset:
    name: str
    conv_filters: tuple[int, ...]
    conv_kernels: tuple[int, ...]
    dense_units: tuple[int, ...]
    latent_dim: int
    kl_weight: float
    learning_rate: float
    description: str = ""
    #: a key of :data:`LAYOUTS`: how blocks are ordered and how the decoder ends
    layout: str = "csm"

    @property
    def downsampling(self) -> int:
        """Input height and width must be multiples of this (stride 2 per conv)."""
        return 2 ** len(self.conv_filters)

    def as_dict(self) -> dict:
        return asdict(self)


def paper_kl_weight(weight: float, latent_dim: int) -> float:
    """The paper's KL weight as a weight on the standard KL divergence.

    The CelebA notebook's loss is ``BCE (mean over pixels) + weight * mean over latent
    dimensions of (mu^2 + exp(log_var) - 1 - log_var)``; the standard KL term
    (``0.5 * sum`` over dimensions) times ``2 * weight / latent_dim`` is the same.
    """
    return 2.0 * weight / latent_dim


PRESETS: dict[str, ArchitecturePreset] = {
    p.name: p
    for p in [
        ArchitecturePreset(
            "paper-celeba", (64, 128, 256, 512, 1024), (5, 5, 5, 5, 2), (512,), 400,
            paper_kl_weight(5e-4, 400), 1e-3,
            "Brocki & Chung's CelebA VAE: 128x128 RGB, latent 400", layout="brocki2019",
        ),
        ArchitecturePreset(
            "celeba-64", (16, 32, 64, 128, 256), (5, 5, 5, 5, 2), (256,), 128,
            paper_kl_weight(5e-4, 128), 1e-3,
            "the paper's structure at quarter width for 64x64 inputs on CPU", layout="brocki2019",
        ),
        ArchitecturePreset(
            "celeba-32", (32, 64, 128, 256), (5, 5, 5, 2), (256,), 64,
            paper_kl_weight(5e-4, 64), 1e-3,
            "the paper's structure for 32x32 inputs (tests, quick runs)", layout="brocki2019",
        ),
        ArchitecturePreset(
            "paper-mob", (16, 32, 64), (4, 4, 4), (256, 256), 20, 0.5e-4, 5e-4,
            "Brocki & Chung's spatial-transcriptomics VAE: gene images on the spot grid, latent 20",
        ),
        ArchitecturePreset(
            "demo-shapes", (32, 64, 128), (4, 4, 4), (128,), 16, 1e-4, 2e-3,
            "small VAE for the built-in 32x32 shapes demo",
        ),
    ]
}


def get_preset(name: str) -> ArchitecturePreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"config key 'preset': unknown architecture {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None


def check_input_shape(preset: ArchitecturePreset, input_shape: tuple[int, ...]) -> None:
    h, w = input_shape[:2]
    if h % preset.downsampling or w % preset.downsampling:
        raise ConfigError(
            f"preset {preset.name!r} halves the input {len(preset.conv_filters)} times, so height and "
            f"width must be multiples of {preset.downsampling}; the samples are {h}x{w}. "
            f"Change the image size (or grid size) or pick another preset."
        )
