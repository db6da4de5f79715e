import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from lungscan.errors import ImageError
from lungscan.imaging import load_image
from lungscan.transforms import (Preprocessing, at_slice_aspect, body_box, eval_transform, framing_warning, model_region,
                                 resolution_warning,
                                 model_view, preprocess, standardize, train_transform)

from synthetic import body_extent, ct_like


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_jpeg_named_png_is_read_by_content(tmp_path):
    path = tmp_path / "n7.png"
    path.write_bytes(_encode(ct_like(0).convert("RGB"), "JPEG"))
    image = load_image(path)
    assert image.mode == "L" and image.size == (300, 240)


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "P", "LA"])
def test_every_source_mode_becomes_the_same_greyscale(mode):
    base = ct_like(1)
    converted = load_image(_encode(base.convert(mode), "PNG"))
    assert converted.mode == "L"
    assert np.abs(np.asarray(converted, int) - np.asarray(base, int)).max() <= 2


def test_sixteen_bit_png_is_scaled_to_eight_bits():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    image = load_image(_encode(Image.fromarray(ramp), "PNG"))
    values = np.asarray(image)
    assert image.mode == "L" and values.min() == 0 and values.max() == 255


def test_rgba_and_rgb_copies_give_identical_model_input():
    base = ct_like(2)
    prep = Preprocessing()
    a = preprocess(load_image(_encode(base.convert("RGBA"), "PNG")), prep)
    b = preprocess(load_image(_encode(base.convert("RGB"), "PNG")), prep)
    assert a.shape == (3, 224, 224) and bool((a == b).all())


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        (_encode(ct_like(0), "PNG")[:400], "corrupt or truncated"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(payload, message):
    with pytest.raises(ImageError, match=message):
        load_image(payload)


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="Cannot read"):
        load_image(tmp_path / "absent.png")


def test_decompression_bomb_is_refused_before_decoding():
    # A valid PNG header claiming 100000 x 100000 pixels: refused from the header alone.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    with pytest.raises(ImageError, match="megapixels|decompression"):
        load_image(bomb)


def test_tiny_images_are_refused():
    with pytest.raises(ImageError, match="at least"):
        load_image(_encode(Image.new("L", (8, 8)), "PNG"))


def test_full_geometry_keeps_the_lateral_lungs_that_the_card_crop_drops():
    # A wide slice (aspect 1.5, like most of the dataset) with bright marks at both lateral edges.
    wide = np.full((200, 300), 60, np.uint8)
    wide[90:110, 5:25] = 250
    wide[90:110, 275:295] = 250
    image = Image.fromarray(wide, "L")
    cropped = np.asarray(model_view(image, Preprocessing(224, geometry="crop")))
    full = np.asarray(model_view(image, Preprocessing(224, geometry="full")))
    assert cropped.shape == full.shape == (224, 224)
    assert cropped.max() < 100  # the card's centre crop cut both marks away
    assert full[:, :40].max() > 200 and full[:, -40:].max() > 200
    assert preprocess(image, Preprocessing(224, geometry="full")).shape == (3, 224, 224)


def test_preprocessing_round_trips_and_old_checkpoints_mean_the_card_crop():
    prep = Preprocessing(256, geometry="full")
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    assert Preprocessing.from_dict({"input_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3}).geometry == "crop"
    with pytest.raises(ValueError, match="geometry"):
        Preprocessing(224, geometry="stretch")


def test_views_are_shown_at_the_slice_aspect_ratio():
    image = Image.fromarray(np.full((200, 300), 90, np.uint8), "L")
    full, crop = Preprocessing(224, geometry="full"), Preprocessing(224)
    assert at_slice_aspect(model_view(image, full), image, full).size == (336, 224)
    assert at_slice_aspect(model_view(image, crop), image, crop).size == (224, 224)  # a crop is not squeezed


def _framed(body: Image.Image, margin: tuple[int, int, int, int]) -> Image.Image:
    """`body` pasted on a black screenshot with (left, top, right, bottom) margins, a scanner
    table line under it and burnt-in text in a corner."""
    left, top, right, bottom = margin
    canvas = Image.new("L", (body.width + left + right, body.height + top + bottom), 0)
    canvas.paste(body, (left, top))
    pixels = np.array(canvas)
    pixels[top + body.height + bottom // 2, left:left + body.width] = 200  # table edge, one pixel thick
    pixels[4:10, 4:40] = 255  # annotation text
    return Image.fromarray(pixels, "L")


def _whole_view(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    """What a model with the `crop` or `full` geometry would see of the whole slice, margin and all."""
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8))[None]
    size = [prep.input_size] * 2 if prep.geometry == "full" else [prep.resize_size]
    return F.center_crop(F.resize(tensor, size, antialias=True), [prep.input_size])[0].numpy().astype(float)


def test_body_geometry_crops_to_the_body_whatever_the_framing():
    body = ct_like(1, size=(300, 200)).crop(body_extent((300, 200)))  # the ellipse filling its box, as in training slices
    tight, loose = _framed(body, (2, 2, 2, 2)), _framed(body, (70, 30, 40, 60))
    left, top, right, bottom = body_box(loose)
    assert abs(left - 70) <= 8 and abs(top - 30) <= 8  # the body, plus a small margin
    assert abs(right - (70 + body.width)) <= 8 and abs(bottom - (30 + body.height)) <= 8  # table and text left out
    prep = Preprocessing(224, geometry="body")
    tight_view, loose_view = np.asarray(model_view(tight, prep), float), np.asarray(model_view(loose, prep), float)
    full = Preprocessing(224, geometry="full")
    full_change = np.abs(_whole_view(tight, full) - _whole_view(loose, full))
    assert np.abs(tight_view - loose_view).mean() < full_change.mean() / 4
    assert at_slice_aspect(model_view(loose, prep), loose, prep).width > 224  # shown at the body's own aspect


@pytest.mark.parametrize("geometry", ["full", "crop"])
def test_a_loosely_framed_slice_is_analysed_cropped_to_the_body_with_a_note(geometry):
    body = ct_like(1, size=(300, 200)).crop(body_extent((300, 200)))
    tight, loose = _framed(body, (2, 2, 2, 2)), _framed(body, (70, 30, 40, 60))
    prep = Preprocessing(224, geometry=geometry)
    assert model_region(tight, prep) == (0, 0, *tight.size) and framing_warning(tight, prep) is None
    assert model_region(loose, prep) == body_box(loose)
    # The model sees the loose slice much as it sees the tight one, and far from the whole loose slice.
    tight_view, loose_view = np.asarray(model_view(tight, prep), float), np.asarray(model_view(loose, prep), float)
    assert np.abs(tight_view - loose_view).mean() < np.abs(tight_view - _whole_view(loose, prep)).mean() / 4
    # Training, validation and the app share `standardize`: the slice is the same as one cropped to the body by hand.
    assert torch.equal(standardize(loose, prep), standardize(loose.crop(body_box(loose)), prep))
    assert torch.equal(preprocess(loose, prep), eval_transform(prep)(standardize(loose.crop(body_box(loose)), prep)))
    note = framing_warning(loose, prep)
    # The body is 288 of 398 px wide (72 %) and 188 of 278 px high (68 %); its box keeps a 2 % margin on each side.
    assert note is not None and "spans only 75% of this slice's width and 70% of its height" in note
    left, top, right, bottom = body_box(loose)
    assert f"analysed cropped to the body (x {left}-{right}, y {top}-{bottom} px of 398x278)" in note
    assert framing_warning(loose, Preprocessing(224, geometry="body")) is None
    if geometry == "full":  # shown at the body's aspect, not the whole slice's
        assert at_slice_aspect(model_view(loose, prep), loose, prep).width == round(224 * (right - left) / (bottom - top))


def test_body_geometry_keeps_a_slice_without_a_dark_surround_whole():
    bright = Image.fromarray(np.full((200, 300), 120, np.uint8), "L")
    assert body_box(bright) == (0, 0, 300, 200)
    speck = np.zeros((200, 300), np.uint8)
    speck[90:110, 140:160] = 200  # no region large enough to be a body
    assert body_box(Image.fromarray(speck, "L")) == (0, 0, 300, 200)


def test_a_slice_smaller_than_the_model_input_gets_a_note():
    prep = Preprocessing(224, geometry="full")
    assert resolution_warning(ct_like(0, size=(300, 240)), prep) is None
    note = resolution_warning(ct_like(0, size=(300, 180)), prep)
    assert note is not None and "only 180 px on its short side" in note and "224 px input" in note
    assert resolution_warning(ct_like(0, size=(300, 180)), Preprocessing(160, geometry="full")) is None
    # What counts is the part of the slice the model is shown: a loosely framed slice is cropped to its body first.
    body = ct_like(1, size=(300, 200)).crop(body_extent((300, 200)))
    loose = _framed(body, (150, 120, 150, 120))
    assert min(loose.size) > 224 and min(body.size) < 224
    assert resolution_warning(loose, prep) is not None and resolution_warning(_framed(body, (2, 2, 2, 2)), prep)


@pytest.mark.parametrize("augment", ["card", "trivial", "window", "window-lowres"])
def test_training_augmentation_varies_a_greyscale_slice_and_keeps_the_model_input_format(augment):
    prep = Preprocessing(64, (0.5,) * 3, (0.5,) * 3, "full")
    slice_ = torch.from_numpy(np.array(ct_like(0, size=(96, 80)), dtype=np.uint8))[None]  # standardized greyscale uint8
    transform = train_transform(prep, augment)
    torch.manual_seed(0)
    outputs = [transform(slice_) for _ in range(8)]
    assert all(o.shape == (3, 64, 64) and o.dtype == torch.float32 for o in outputs)
    assert all(torch.equal(o[0], o[1]) and torch.equal(o[0], o[2]) for o in outputs)  # still greyscale
    assert all(o.min() >= -1 and o.max() <= 1 for o in outputs)  # [0, 1] normalised by mean/std 0.5
    assert len({o.sum().item() for o in outputs}) == 8  # a different view each time
    with pytest.raises(ValueError, match="unknown augmentation"):
        train_transform(prep, "autoaugment")


def test_random_window_changes_the_contrast_as_another_ct_window_would():
    from lungscan.transforms import RandomWindow

    slice_ = torch.tensor([[[0, 20, 110, 250]]], dtype=torch.uint8)  # surround, lung, body, bone of a screenshot
    torch.manual_seed(0)
    views = [RandomWindow()(slice_) for _ in range(200)]
    assert all(v.dtype == torch.uint8 and v.shape == slice_.shape for v in views)
    assert all(v[0, 0, 0] <= v[0, 0, 1] <= v[0, 0, 2] <= v[0, 0, 3] for v in views)  # the order of tissues is kept
    lungs = torch.stack([v[0, 0, 1] for v in views]).float()
    assert lungs.min() == 0 and lungs.max() > 80  # from black lungs to lung-window grey ones
    assert max(int(v[0, 0, 0]) for v in views) > 50  # grey air, as through the lung window


def test_random_low_resolution_blurs_fine_detail_as_a_smaller_source_image_would():
    from lungscan.transforms import RandomLowResolution

    stripes = torch.zeros((1, 64, 64), dtype=torch.uint8)
    stripes[..., ::2] = 200  # the finest detail a slice can hold, one pixel wide
    torch.manual_seed(0)
    views = [RandomLowResolution()(stripes) for _ in range(50)]
    assert all(v.dtype == torch.uint8 and v.shape == stripes.shape for v in views)
    contrast = [float(v.float()[..., 8:56, 8:56].std()) for v in views]  # away from the edges
    assert max(contrast) < 0.5 * float(stripes.float().std())  # the stripes are lost, as below their resolution
    assert min(float(v.float().mean()) for v in views) > 80  # while the mean grey level (about 100) stays
    flat = torch.full((1, 64, 64), 90, dtype=torch.uint8)
    assert all(torch.equal(RandomLowResolution()(flat), flat) for _ in range(5))  # nothing to blur, nothing changes


def test_framing_table_counts_the_loosely_framed_slices_of_each_split_and_class(tmp_path):
    from synthetic import make_dataset
    from training.framing import framing_table

    make_dataset(tmp_path, per_class=2)  # synthetic slices are framed tightly, as the real training slices
    body = ct_like(3, size=(300, 200)).crop(body_extent((300, 200)))
    _framed(body, (70, 30, 40, 60)).save(tmp_path / "train" / "normal" / "loose.png")
    _framed(body, (10, 60, 10, 60)).save(tmp_path / "test" / "adenocarcinoma" / "loose.png")  # loose in height only
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in framing_table(tmp_path).splitlines()[2:]]
    assert len(rows) == 12
    counts = {(split, name): (files, loose) for split, name, files, _, _, loose in rows}
    assert counts.pop(("train", "normal")) == ("3", "1") and counts.pop(("test", "adenocarcinoma")) == ("3", "1")
    assert set(counts.values()) == {("2", "0")}
