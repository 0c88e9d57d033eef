"""An image folder source (images + attribute table): every kind of image decoded to the values the
README states, or refused with one line naming the file, nothing written.

The stated mapping to the 8-bit store: 8-bit as stored; 16-bit ``v`` -> round(v / 257); float ``f``
in [0, 1] -> round(255 f); grey replicated to R, G, B; transparent pixels composited on the
background (``a c + (1 - a) b``); EXIF orientation applied; resized in floating point, rounded once.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from concept_saliency.data.images import decode_image, load_image
from concept_saliency.data.samples import SampleStore
from concept_saliency.errors import InputDataError
from concept_saliency.stages.prepare_images import prepare_images

from helpers import assert_no_partial_artifacts, run_stage, user_error
from .image_files import linear_profile, png_bytes, tiff_bytes

WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def rounded(values) -> np.ndarray:
    """The stated rounding: to the nearest integer, halves up."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "faces"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(images / f"f{i}.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("image,Smiling,Glasses\n" + "".join(f"f{i}.png,{1 if i % 2 else -1},1\n"
                                                          for i in range(6)))
    return {"images": images, "labels": labels, "results": tmp_path / "results"}


def prepare(folder, *parts, background="white", image_size=16):
    """Run the stage; with ``parts``, it must fail with one line holding them and leave nothing."""
    out = folder["results"] / "faces" / "data" / "samples.h5"
    kw = dict(images=str(folder["images"]), labels=str(folder["labels"]), samples=str(out),
              image_size=image_size, validation_fraction=0.25, seed=0, background=background)
    if not parts:
        run_stage("prepare_images", ("samples",), **kw)
        assert_no_partial_artifacts(folder["results"])
        with SampleStore(str(out)) as store:
            return store.read(), store.ids
    with user_error(*parts, error=InputDataError):
        prepare_images(**kw)
    assert not out.exists()
    assert_no_partial_artifacts(folder["results"])


def put(folder, name: str, data: bytes | Image.Image, **save) -> str:
    """Replace image f0.png's row by ``name`` (written from bytes or a Pillow image)."""
    path = folder["images"] / name
    if isinstance(data, Image.Image):
        data.save(path, **save)
    else:
        path.write_bytes(data)
    text = folder["labels"].read_text().replace("f0.png,", f"{name},", 1)
    folder["labels"].write_text(text)
    return str(path)


# ------------------------------------------------------------------ 8-bit, grey, resizing


def test_the_unspoilt_folder_packs_its_pixels_unchanged(folder):
    x, ids = prepare(folder, image_size=20)
    assert ids == [f"f{i}" for i in range(6)]
    for i in range(6):
        expected = np.asarray(Image.open(folder["images"] / f"f{i}.png")) / 255.0
        np.testing.assert_allclose(x[i], expected, atol=1e-7)


def test_grey_1_bit_and_2_bit_images_are_replicated_to_rgb(tmp_path):
    grey = np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5)
    Image.fromarray(grey).save(tmp_path / "l.png")
    Image.fromarray(grey > 100).save(tmp_path / "b.png")
    np.testing.assert_array_equal(load_image(tmp_path / "l.png", None), np.repeat(grey[..., None], 3, 2))
    np.testing.assert_array_equal(load_image(tmp_path / "b.png", None)[..., 1], np.where(grey > 100, 255, 0))
    (tmp_path / "g2.png").write_bytes(_two_bit_png([0, 1, 2, 3]))
    np.testing.assert_array_equal(load_image(tmp_path / "g2.png", None)[0, :, 0], [0, 85, 170, 255])


def _two_bit_png(levels, trns: int | None = None) -> bytes:
    """A 2-bit grey PNG of one row (written by hand: Pillow writes no 2-bit PNGs)."""
    byte = 0
    for level in levels:
        byte = (byte << 2) | level
    byte <<= 2 * (4 - len(levels))
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", len(levels), 1, 2, 0, 0, 0, 0))]
    if trns is not None:
        chunks.append((b"tRNS", struct.pack(">H", trns)))
    chunks += [(b"IDAT", zlib.compress(bytes([0, byte]))), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
                                           for k, d in chunks)


def test_resizing_is_bilinear_antialiased_in_floating_point(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", 16)
    expected = np.stack([np.asarray(Image.fromarray(rgb[..., c].astype(np.float32)).resize(
        (16, 16), Image.BILINEAR, reducing_gap=None)) for c in range(3)], axis=2)
    np.testing.assert_array_equal(out, rounded(expected))
    # the same as Pillow's own 8-bit resizing, but for its fixed-point rounding
    pillow = np.asarray(Image.fromarray(rgb).resize((16, 16), Image.BILINEAR, reducing_gap=None))
    assert np.abs(out.astype(int) - pillow).max() <= 1


# ------------------------------------------------------------------ 16-bit and float


RAMP16 = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)


@pytest.mark.parametrize("kind", ["png", "tiff", "tiff-big-endian", "tiff-deflate"])
def test_a_16_bit_grey_ramp_maps_to_round_v_over_257(tmp_path, kind):
    path = tmp_path / ("ramp.png" if kind == "png" else "ramp.tif")
    if kind == "png":
        Image.fromarray(RAMP16).save(path)
    else:
        path.write_bytes(tiff_bytes(RAMP16, big_endian="big" in kind, deflate="deflate" in kind))
    out = load_image(path, None)
    expected = rounded(RAMP16 / 257.0)
    np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, axis=2))
    flat = out[..., 0].ravel()
    assert (np.diff(flat.astype(int)) >= 0).all() and len(np.unique(flat)) == 256  # ordered, every level
    assert (flat == 255).mean() < 0.01  # not clipped (convert("RGB") made 97% of it 255)


def test_a_16_bit_image_is_resized_before_it_is_quantised(tmp_path):
    rng = np.random.default_rng(5)
    v = (257 * 100 + rng.choice([0, 200], size=(32, 32))).astype(np.uint16)  # sub-level detail
    Image.fromarray(v).save(tmp_path / "fine.png")
    out = load_image(tmp_path / "fine.png", 8)[..., 0]
    reference = np.asarray(Image.fromarray((v / 257.0).astype(np.float32)).resize(
        (8, 8), Image.BILINEAR, reducing_gap=None))
    np.testing.assert_array_equal(out, rounded(reference))
    quantised_first = np.asarray(Image.fromarray(rounded(v / 257.0)).resize((8, 8), Image.BILINEAR,
                                                                               reducing_gap=None))
    assert (out != quantised_first).any()  # the test can tell the two orders apart


@pytest.mark.parametrize("kind", ["png", "tiff", "tiff-big-endian", "tiff-deflate"])
def test_16_bit_rgb_keeps_every_bit_until_the_stated_rounding(tmp_path, kind):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 65536, (6, 9, 3))
    rgb[0, :3] = [[386, 385, 32895]] * 3  # where Pillow's high byte (floor(v/256)) differs: 1, 1, 128
    path = tmp_path / ("c.png" if kind == "png" else "c.tif")
    path.write_bytes(png_bytes(rgb) if kind == "png" else
                     tiff_bytes(rgb, big_endian="big" in kind, deflate="deflate" in kind))
    out = load_image(path, None)
    np.testing.assert_array_equal(out, rounded(rgb / 257.0))
    assert out[0, 0].tolist() == [2, 1, 128]


@pytest.mark.parametrize("kind", ["rgba-png", "grey-alpha-png", "rgba-tiff"])
def test_16_bit_alpha_is_composited_at_full_precision(tmp_path, kind):
    rng = np.random.default_rng(2)
    channels = 2 if kind == "grey-alpha-png" else 4
    v = rng.integers(0, 65536, (5, 7, channels))
    v[0, 0, -1], v[0, 1, -1] = 0, 65535
    path = tmp_path / ("a.tif" if "tiff" in kind else "a.png")
    path.write_bytes(tiff_bytes(v, extra_samples=(2,)) if "tiff" in kind else png_bytes(v))
    colour = v[..., :-1] / 257.0
    if channels == 2:
        colour = np.repeat(colour, 3, axis=2)
    a = v[..., -1:] / 65535.0
    out = decode_image(path, background=(10, 200, 30))
    np.testing.assert_allclose(out, a * colour + (1 - a) * np.array([10, 200, 30]), atol=1e-9)
    assert out[0, 0].tolist() == [10, 200, 30]  # fully transparent: the background, whatever is hidden
    np.testing.assert_allclose(out[0, 1], colour[0, 1])


def test_16_bit_white_is_zero_grey_is_inverted(tmp_path):
    path = tmp_path / "wz.tif"
    path.write_bytes(tiff_bytes(RAMP16, photometric=0))
    np.testing.assert_array_equal(load_image(path, None)[..., 0], rounded((65535 - RAMP16.astype(float)) / 257))


def test_a_float_image_in_0_1_keeps_its_gradation(tmp_path):
    f = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(f).save(tmp_path / "f.tif")
    out = load_image(tmp_path / "f.tif", None)[..., 0]
    np.testing.assert_array_equal(out, rounded(255.0 * f.astype(np.float64)))
    assert len(np.unique(out)) == 256  # not 0/1


@pytest.mark.parametrize("values, parts", [
    (np.array([[0.5, np.nan]]), ["1 float sample(s) are NaN or infinite"]),
    (np.array([[0.5, np.inf]]), ["NaN or infinite"]),
    (np.array([[0.0, 255.0]]), ["range over [0, 255]", "values in [0, 1]"]),
    (np.array([[-0.5, 1.0]]), ["range over [-0.5, 1]"]),
])
def test_float_samples_outside_0_1_are_refused(folder, values, parts):
    put(folder, "f.tif", Image.fromarray(values.astype(np.float32)))
    prepare(folder, "f.tif", *parts)


@pytest.mark.parametrize("data, parts", [
    (tiff_bytes(np.array([[-5, 3]]), bits=16, sample_format=2), ["signed integer samples"]),
    (tiff_bytes(np.array([[-5, 3]]), bits=8, sample_format=2), ["signed integer samples"]),
    (tiff_bytes(np.array([[70000, 3]]), bits=32), ["32-bit integer samples (mode I)"]),
    (tiff_bytes(np.zeros((2, 2, 5)), bits=8, extra_samples=(0, 0)), ["5 samples per pixel", "drop 2"]),
    (tiff_bytes(np.zeros((2, 2, 4)), extra_samples=(1,)), ["16-bit RGBA", "RGBa;16"]),
    (tiff_bytes(np.zeros((2, 2, 4)), photometric=5), ["16-bit CMYK"]),
    (tiff_bytes(np.array([[0.5, 0.25]]), bits=32, sample_format=3, photometric=0), ["white-is-zero"]),
])
def test_tiff_layouts_pillow_would_misread_are_refused(folder, data, parts):
    put(folder, "odd.tif", data)
    prepare(folder, "odd.tif", *parts)


def test_a_signed_int32_image_from_pillow_is_refused(folder):
    put(folder, "i.tif", Image.fromarray(np.array([[-5, 0, 70000]], dtype=np.int32)))
    prepare(folder, "i.tif", "i.tif", "signed integer samples")


def test_cielab_has_no_faithful_conversion(folder):
    put(folder, "lab.tif", Image.new("LAB", (4, 4), (50, 0, 0)))
    prepare(folder, "lab.tif", "mode LAB", "cannot be converted to RGB faithfully")


# ------------------------------------------------------------------ transparency


def _partial(colour, alpha, background):
    a = alpha / 255.0
    return a * np.asarray(colour, float) + (1 - a) * np.asarray(background, float)


@pytest.mark.parametrize("background, rgb", [("white", WHITE), ("black", BLACK), ([0, 128, 255], (0, 128, 255))])
def test_transparent_rgba_pixels_become_the_background(folder, background, rgb):
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[..., :3] = (250, 10, 10)  # a hidden red
    rgba[:8, :, 3] = 255
    rgba[8:, :4, 3] = 100
    put(folder, "t.png", Image.fromarray(rgba))
    x, _ = prepare(folder, background=background)
    got = np.rint(x[0] * 255)
    np.testing.assert_array_equal(got[:8], np.broadcast_to([250, 10, 10], (8, 16, 3)))
    np.testing.assert_array_equal(got[8:, 4:], np.broadcast_to(rgb, (8, 12, 3)))
    np.testing.assert_array_equal(got[8:, :4], np.broadcast_to(rounded(_partial((250, 10, 10), 100, rgb)),
                                                               (8, 4, 3)))


def test_grey_with_alpha_and_palettes_with_transparency(tmp_path):
    la = Image.fromarray(np.array([[[40, 0], [40, 255], [40, 51]]], dtype=np.uint8), mode="LA")
    la.save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(tmp_path / "la.png", None, BLACK)[0],
                                  [[0, 0, 0], [40, 40, 40], rounded([8, 8, 8])])
    p = Image.new("P", (3, 1))
    p.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90])
    p.putdata([0, 1, 2])
    p.save(tmp_path / "table.png", transparency=bytes([128, 0, 255]))  # tRNS: alpha per palette entry
    np.testing.assert_array_equal(load_image(tmp_path / "table.png", None, WHITE)[0],
                                  [rounded(_partial((10, 20, 30), 128, WHITE)), WHITE, [70, 80, 90]])
    p.save(tmp_path / "index.gif", transparency=1)  # GIF: one transparent palette index
    np.testing.assert_array_equal(load_image(tmp_path / "index.gif", None, BLACK)[0],
                                  [[10, 20, 30], BLACK, [70, 80, 90]])


def test_a_palette_image_with_an_alpha_channel(tmp_path):
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:3] = [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
    pa = np.array([[[0, 255], [1, 0], [2, 102]]])  # index, alpha
    (tmp_path / "pa.tif").write_bytes(tiff_bytes(pa, bits=8, extra_samples=(2,), palette=palette))
    assert Image.open(tmp_path / "pa.tif").mode == "PA"
    np.testing.assert_array_equal(load_image(tmp_path / "pa.tif", None, BLACK)[0],
                                  [[10, 20, 30], BLACK, rounded(_partial((70, 80, 90), 102, BLACK))])


def test_a_pngs_transparent_colour_becomes_the_background(tmp_path):
    rgb = np.array([[[1, 2, 3], [4, 5, 6]]], dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(1, 2, 3))
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png", None, BLACK)[0], [BLACK, [4, 5, 6]])
    Image.fromarray(np.array([[7, 8]], dtype=np.uint8)).save(tmp_path / "l.png", transparency=7)
    np.testing.assert_array_equal(load_image(tmp_path / "l.png", None, WHITE)[0], [WHITE, [8, 8, 8]])
    (tmp_path / "g2.png").write_bytes(_two_bit_png([0, 1, 2, 3], trns=1))  # the key is a 2-bit value
    np.testing.assert_array_equal(load_image(tmp_path / "g2.png", None, BLACK)[0, :, 0], [0, 0, 170, 255])
    grey16 = np.array([[1000, 2000]])
    (tmp_path / "g16.png").write_bytes(png_bytes(grey16, trns=struct.pack(">H", 1000)))
    np.testing.assert_array_equal(load_image(tmp_path / "g16.png", None, WHITE)[0],
                                  [WHITE, rounded([2000 / 257] * 3)])
    rgb16 = np.array([[[257, 514, 771], [1000, 2000, 3000]]])
    (tmp_path / "c16.png").write_bytes(png_bytes(rgb16, trns=struct.pack(">HHH", 257, 514, 771)))
    np.testing.assert_array_equal(load_image(tmp_path / "c16.png", None, BLACK)[0],
                                  [BLACK, rounded(np.array([1000, 2000, 3000]) / 257)])


# ------------------------------------------------------------------ colour spaces


def test_cmyk_is_converted_by_the_stated_formula(tmp_path):
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 128, 0, 64], [30, 60, 90, 255]]], dtype=np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.tif")  # lossless: exact values
    expected = rounded((255 - cmyk[..., :3].astype(float)) * (255 - cmyk[..., 3:].astype(float)) / 255)
    assert np.abs(load_image(tmp_path / "c.tif", None).astype(int) - expected).max() <= 1
    big = Image.fromarray(np.repeat(np.repeat(cmyk, 8, axis=0), 8, axis=1), mode="CMYK")
    big.save(tmp_path / "c.jpg", quality=95)  # a CMYK JPEG (Adobe, inverted): lossy, so a tolerance
    out = load_image(tmp_path / "c.jpg", None)[4, ::8].astype(int)
    assert np.abs(out - expected[0]).max() <= 8, out


def _srgb_encoded(v) -> np.ndarray:
    x = np.asarray(v, dtype=np.float64) / 255
    return 255 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize("grey", [False, True])
def test_a_colour_profile_other_than_srgb_is_applied(tmp_path, grey):
    v = np.arange(0, 256, 15, dtype=np.uint8)[None]
    pixels = v if grey else np.stack([v, v // 2, v // 3], axis=2)
    Image.fromarray(pixels).save(tmp_path / "p.png", icc_profile=linear_profile(grey))
    expected = _srgb_encoded(pixels if not grey else np.repeat(pixels[..., None], 3, axis=2))
    out = load_image(tmp_path / "p.png", None).astype(int)
    assert np.abs(out - expected).max() <= 1.5, (out[0, :, 0], expected[0, :, 0])
    assert (out[0, 1:-1, 0] > v[0, 1:-1].astype(int) + 5).all()  # not read as sRGB


def test_an_srgb_profile_changes_nothing_and_unusable_ones_are_refused(folder, tmp_path):
    from PIL import ImageCms

    rgb = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb).save(tmp_path / "s.png", icc_profile=srgb)
    np.testing.assert_array_equal(load_image(tmp_path / "s.png", None), rgb)
    put(folder, "deep.png", png_bytes(np.zeros((2, 2, 3)), icc=linear_profile()))
    prepare(folder, "deep.png", "colour profile 'linear RGB (test)' cannot be applied to 16-bit")
    Image.fromarray(rgb).save(tmp_path / "bad.png", icc_profile=b"not a profile")
    with user_error("bad.png", "colour profile cannot be read", error=InputDataError):
        decode_image(path=tmp_path / "bad.png")


def test_ycbcr_reads_as_rgb(tmp_path):
    Image.new("RGB", (16, 16), (200, 40, 90)).save(tmp_path / "y.jpg", quality=95)  # JPEGs are YCbCr inside
    assert np.abs(load_image(tmp_path / "y.jpg", None)[8, 8].astype(int) - [200, 40, 90]).max() <= 3
    ycc = Image.new("YCbCr", (4, 4), (120, 90, 200))
    ycc.save(tmp_path / "y.tif")  # a YCbCr TIFF opens as mode YCbCr: converted by the JPEG (JFIF) formula
    assert Image.open(tmp_path / "y.tif").mode == "YCbCr"
    y, cb, cr = 120, 90 - 128, 200 - 128
    jfif = [y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb]
    assert np.abs(load_image(tmp_path / "y.tif", None)[0, 0].astype(int) - rounded(jfif)).max() <= 1


def test_premultiplied_grey_alpha_has_no_conversion(folder):
    put(folder, "la.tif", tiff_bytes(np.zeros((2, 2, 2)), bits=8, extra_samples=(1,)))
    prepare(folder, "la.tif", "mode La", "cannot be converted to RGB faithfully")


# ------------------------------------------------------------------ orientation and frames


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_exif_orientation_is_applied(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    stored = Image.fromarray(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8))
    stored.save(tmp_path / "o.png", exif=_exif(orientation))
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    assert upright.shape == ((10, 6, 3) if orientation >= 5 else (6, 10, 3))
    np.testing.assert_array_equal(load_image(tmp_path / "o.png", None), upright)


def test_a_phone_photo_stored_sideways_comes_out_upright(folder):
    upright = np.zeros((32, 16, 3), dtype=np.uint8)  # portrait: red on top, blue below
    upright[:16] = (255, 0, 0)
    upright[16:] = (0, 0, 255)
    stored = np.rot90(upright, 1)  # the sensor's landscape: EXIF 6 says turn it clockwise
    put(folder, "phone.jpg", Image.fromarray(stored), exif=_exif(6), quality=95)
    x, _ = prepare(folder, image_size=16)
    top, bottom = x[0][2, 8], x[0][13, 8]
    assert top[0] > 0.9 and top[2] < 0.1 and bottom[2] > 0.9 and bottom[0] < 0.1, (top, bottom)


def test_an_unknown_orientation_is_refused(folder):
    put(folder, "o.png", Image.new("RGB", (4, 4)), exif=_exif(9))
    prepare(folder, "o.png", "EXIF orientation 9")


@pytest.mark.parametrize("fmt, name", [("GIF", "a.gif"), ("PNG", "a.png"), ("TIFF", "a.tif"),
                                       ("WEBP", "a.webp")])
def test_several_frames_are_refused(folder, fmt, name):
    frames = [Image.new("RGB", (8, 8), (80 * i, 0, 0)) for i in range(3)]
    frames[0].save(folder["images"] / name, fmt, save_all=True, append_images=frames[1:], duration=100)
    put(folder, name, (folder["images"] / name).read_bytes())
    prepare(folder, name, "holds 3 frames", "one image per file")


def test_a_multi_picture_jpeg_gives_its_primary_picture(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((200, 0, 0), (0, 200, 0))]
    frames[0].save(tmp_path / "m.jpg", "MPO", save_all=True, append_images=frames[1:], quality=95)
    assert Image.open(tmp_path / "m.jpg").format == "MPO"
    assert np.abs(load_image(tmp_path / "m.jpg", None)[4, 4].astype(int) - [200, 0, 0]).max() <= 3


# ------------------------------------------------------------------ files that are not images


def test_an_image_that_is_not_one(folder):
    (folder["images"] / "f3.png").write_text("not a PNG")
    prepare(folder, "f3.png", "cannot read the image", "not a PNG, JPEG, TIFF")


def test_a_format_pillow_would_hand_to_another_program_is_refused(folder):
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "EPS")  # opening EPS runs Ghostscript
    put(folder, "x.eps", buf.getvalue())
    prepare(folder, "x.eps", "cannot read the image")


def test_a_truncated_image(folder):
    path = folder["images"] / "f2.png"
    path.write_bytes(path.read_bytes()[:60])
    prepare(folder, "f2.png", "cannot read the image")


def test_a_decompression_bomb(folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a 20x20 image is then 2x too large
    prepare(folder, "f0.png", "refused", "decompression bomb")


def test_a_missing_image(folder):
    (folder["images"] / "f4.png").unlink()
    prepare(folder, str(folder["images"]), "f4.png", "missing", "line 6")


# ------------------------------------------------------------------ the table and sample ids


@pytest.mark.parametrize("row, parts", [("f1.png,2,1", ["column 'Smiling'", "'2'", "-1, 0 or 1", "line 3"]),
                                        ("f1.png,yes,1", ["'yes'"]),
                                        ("f1.png,nan,1", ["'nan'"]), ("f1.png,,1", ["value ''"]),
                                        ("f0.png,1,1", ["'f0.png' appears more than once", "lines 2 and 3"]),
                                        ("../f1.png,1,1", ["line 3", "points outside the images folder"]),
                                        ("/etc/f1.png,1,1", ["line 3", "absolute path"]),
                                        ("f0.jpg,1,1", ["lines 2 and 3", "same sample id 'f0'"])])
def test_bad_label_rows(folder, row, parts):
    lines = folder["labels"].read_text().splitlines()
    lines[2] = row
    folder["labels"].write_text("\n".join(lines) + "\n")
    Image.new("RGB", (4, 4)).save(folder["images"] / "f0.jpg")
    prepare(folder, str(folder["labels"]), *parts)


def test_a_label_table_without_attributes(folder):
    folder["labels"].write_text("image\nf0.png\n")
    prepare(folder, str(folder["labels"]), "at least one attribute column")


def test_images_in_subfolders_keep_their_path_in_the_id(folder):
    for sub in ("a", "b"):
        (folder["images"] / sub).mkdir()
        Image.new("RGB", (4, 4), (200 if sub == "a" else 0, 0, 0)).save(folder["images"] / sub / "x.png")
    folder["labels"].write_text("image,Smiling\na/x.png,1\n./b//x.png,-1\n")
    x, ids = prepare(folder, image_size=4)
    assert ids == ["a/x", "b/x"]
    assert x[0][0, 0, 0] == pytest.approx(200 / 255) and x[1][0, 0, 0] == 0


def test_a_symbolic_link_inside_the_folder_is_followed(folder, tmp_path):
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (4, 4), (0, 90, 0)).save(outside)
    (folder["images"] / "linked.png").symlink_to(outside)
    folder["labels"].write_text(folder["labels"].read_text().replace("f0.png,", "linked.png,", 1))
    x, ids = prepare(folder, image_size=4)
    assert ids[0] == "linked" and x[0][0, 0, 1] == pytest.approx(90 / 255)
