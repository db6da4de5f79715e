"""DICOM reading and de-identification on real files built with pydicom."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    generate_uid,
)

from lungscan import dicom
from lungscan.errors import DicomError, ImageError
from lungscan.imaging import load_image
from lungscan.transforms import Preprocessing, body_box, body_span, framing_warning, model_region
from test_analysis import ct_png

IDENTIFYING = {
    "PatientName": "Doe^Johnathan",
    "PatientID": "MRN-7731905",
    "PatientBirthDate": "19580214",
    "PatientSex": "M",
    "PatientAddress": "12 Harbour Lane, Springfield",
    "InstitutionName": "St Elsewhere General",
    "ReferringPhysicianName": "Welby^Marcus",
    "OperatorsName": "Tech^Tina",
    "AccessionNumber": "ACC99887766",
    "StudyDate": "20240517",
    "StudyTime": "101530",
    "SeriesDate": "20240517",
    "StudyDescription": "Chest CT for Johnathan Doe",
    "StationName": "CTROOM3-SPRFLD",
}


def hu_pattern(rows: int = 64, cols: int = 64) -> np.ndarray:
    """A slice with air, lung, soft tissue and bone so windows differ visibly."""
    hu = np.full((rows, cols), -1024, dtype=np.int16)
    hu[:, cols // 4: cols // 2] = -600
    hu[:, cols // 2: 3 * cols // 4] = 60
    hu[:, 3 * cols // 4:] = 1200
    return hu


#: The phantom's body: an ellipse centred in the slice with these half-axes (shares of the side).
PHANTOM_BODY = (0.32, 0.24)


def chest_phantom(size: int = 256) -> np.ndarray:
    """Hounsfield units of an axial chest slice in a full field of view, as a CT reconstruction frames it.

    The scanner's padding outside the circular field of view, air around the patient, an elliptical body (fat over
    muscle, spanning 64 % of the width and 48 % of the height) holding two aerated lungs with vessels in them and a
    spine, and a table under the body.
    """
    rows, cols = np.mgrid[:size, :size] / size
    hu = np.full((size, size), -1000.0)
    hu[(rows - 0.5) ** 2 + (cols - 0.5) ** 2 > 0.25] = -3024.0
    half_w, half_h = PHANTOM_BODY
    hu[((cols - 0.5) / half_w) ** 2 + ((rows - 0.5) / half_h) ** 2 <= 1] = -100.0
    hu[((cols - 0.5) / (half_w - 0.03)) ** 2 + ((rows - 0.5) / (half_h - 0.03)) ** 2 <= 1] = 40.0
    for centre in (0.38, 0.62):
        lung = ((cols - centre) / 0.09) ** 2 + ((rows - 0.48) / 0.15) ** 2 <= 1
        hu[lung] = -850.0
        hu[lung & (np.rint(rows * size) % 9 < 2) & (np.rint(cols * size) % 11 < 2)] = 40.0  # vessels
    hu[(rows - 0.68) ** 2 + (cols - 0.5) ** 2 <= 0.03**2] = 700.0
    hu[(rows >= 0.5 + half_h + 0.02) & (rows < 0.5 + half_h + 0.035) & (abs(cols - 0.5) < 0.3)] = 150.0
    return hu


def phantom_dicom(size: int = 256) -> bytes:
    return make_dicom(np.rint(chest_phantom(size) + 1024).astype(np.int16), identifying=False)


def make_dicom(
    stored: np.ndarray | None = None,
    *,
    slope: float | None = 1.0,
    intercept: float | None = -1024.0,
    photometric: str = "MONOCHROME2",
    transfer_syntax=ExplicitVRLittleEndian,
    pixel_bytes: bytes | None = None,
    frames: int = 1,
    identifying: bool = True,
    **extra,
) -> bytes:
    """A CT Image Storage file; `stored` holds raw stored values (before rescale)."""
    if stored is None:
        stored = (hu_pattern() + 1024).astype(np.uint16)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = transfer_syntax
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "CT"
    if identifying:
        for keyword, value in IDENTIFYING.items():
            setattr(ds, keyword, value)
        block = ds.private_block(0x0011, "ACME HOSPITAL PACS", create=True)
        block.add_new(0x01, "LO", "internal-ref-SECRET42")
        referenced = Dataset()
        referenced.ReferencedSOPInstanceUID = generate_uid()
        referenced.RequestingPhysician = "Kildare^James"
        ds.RequestAttributesSequence = [referenced]
    ds.SliceThickness = 1.25
    ds.KVP = 120
    ds.PixelSpacing = [0.7, 0.7]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = stored.shape[-2:]
    bits = 8 if stored.dtype == np.uint8 else 16
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    if pixel_bytes is not None:
        ds.PixelData = pixel_bytes
    elif transfer_syntax is not None:
        ds.PixelData = stored.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_rescale_slope_and_intercept_give_hounsfield_units():
    hu = hu_pattern()
    stored = ((hu + 1024) // 2).astype(np.uint16)  # slope 2: stored = (HU + 1024) / 2
    result = dicom.read_dicom(make_dicom(stored, slope=2.0, intercept=-1024.0))
    np.testing.assert_array_equal(result.hu, hu.astype(np.float32))
    assert result.image.mode == "L" and result.image.size == (64, 64)


def test_lung_window_maps_hounsfield_units_to_grey_levels():
    image = np.asarray(dicom.read_dicom(make_dicom()).render("lung"))
    # Lung window (1500, -600) spans -1350..150 HU.
    assert image[0, 0] == 55  # air, -1024 HU: 326 / 1500 * 255 = 55.4
    assert image[0, 20] == 128  # -600 HU is the window centre: 127.5 rounds to even
    assert image[0, 40] == 240  # soft tissue, 60 HU: 1410 / 1500 * 255 = 239.7
    assert image[0, 63] == 255  # bone is above the window


def test_the_model_sees_a_slice_with_the_contrast_of_its_training_screenshots():
    slice_ = dicom.read_dicom(make_dicom())
    assert slice_.window == dicom.MODEL_WINDOW == (2230.0, 70.0)  # spans -1045..1185 HU
    image = np.asarray(slice_.image)
    # Lung tissue is dark, as in the screenshots (aerated lung, -850 HU, comes out 22: see the phantom test below),
    # not mid-grey as through the lung window.
    assert image[0, 20] == 51 and np.asarray(slice_.render("lung"))[0, 20] == 128  # -600 HU: 445 / 2230 * 255 = 50.9
    assert image[0, 40] == 126  # soft tissue, 60 HU: 1105 / 2230 * 255 = 126.4
    assert image[0, 63] == 255  # bone, 1200 HU, just above the window


@pytest.mark.parametrize(
    ("window", "air", "soft_tissue", "bone"),
    [("lung", 55, 240, 255), ("mediastinal", 0, 135, 255), ("bone", 0, 79, 241), ((2000.0, 0.0), 0, 135, 255)],
)
def test_render_applies_presets_and_custom_windows(window, air, soft_tissue, bone):
    slice_ = dicom.read_dicom(make_dicom())
    rendered = np.asarray(slice_.render(window))
    assert (rendered[0, 0], rendered[0, 40], rendered[0, 63]) == (air, soft_tissue, bone)


def test_window_argument_sets_the_main_image_and_bad_windows_are_refused():
    data = make_dicom()
    mediastinal = dicom.read_dicom(data, window="mediastinal")
    assert mediastinal.window == dicom.WINDOWS["mediastinal"]
    assert np.array_equal(np.asarray(mediastinal.image), np.asarray(mediastinal.render("mediastinal")))
    with pytest.raises(DicomError, match="Unknown window 'liver'"):
        dicom.read_dicom(data, window="liver")
    with pytest.raises(DicomError, match="positive"):
        dicom.read_dicom(data, window=(0, 40))


def test_monochrome1_is_displayed_inverted_but_analysed_air_dark():
    normal = dicom.read_dicom(make_dicom(photometric="MONOCHROME2"))
    inverted = dicom.read_dicom(make_dicom(photometric="MONOCHROME1"))
    np.testing.assert_array_equal(inverted.hu, normal.hu)  # the values are the same ...
    np.testing.assert_array_equal(np.asarray(inverted.render("lung")), 255 - np.asarray(normal.render("lung")))
    assert inverted.inverted and np.asarray(inverted.render("lung"))[0, 63] == 0  # ... the display not
    # The model learned from slices with dark air and bright bone, whatever the file's display convention.
    np.testing.assert_array_equal(np.asarray(inverted.image), np.asarray(normal.image))
    assert np.asarray(inverted.image)[0, 63] == 255


def test_the_model_sees_the_air_around_the_patient_black_and_everything_else_as_through_its_window():
    hu = chest_phantom()
    slice_ = dicom.read_dicom(phantom_dicom())
    image, windowed = np.asarray(slice_.image), np.asarray(slice_.render(dicom.MODEL_WINDOW))
    around = hu <= -1000  # the air around the patient and the padding outside the field of view
    assert set(np.unique(np.asarray(slice_.render("lung"))[around])) == {0, 60}  # the lung window shows air grey ...
    assert (image[around] == 0).all()  # ... the model sees it black, like the surround of its training slices
    np.testing.assert_array_equal(image[~around], windowed[~around])  # the lungs, the body and the table unchanged
    assert (image[hu == -850] == 22).all()  # aerated lung is inside the body, not surrounding air


def test_a_dicom_slice_in_its_field_of_view_is_cropped_to_the_body_like_a_loosely_framed_upload():
    slice_ = dicom.read_dicom(phantom_dicom())
    size = slice_.image.width
    left, top, right, bottom = body_box(slice_.image)
    half_w, half_h = PHANTOM_BODY
    assert abs(left - (0.5 - half_w) * size) < 0.05 * size and abs(right - (0.5 + half_w) * size) < 0.05 * size
    assert abs(top - (0.5 - half_h) * size) < 0.05 * size and abs(bottom - (0.5 + half_h) * size) < 0.05 * size
    assert model_region(slice_.image, Preprocessing(geometry="full")) == (left, top, right, bottom)
    assert "analysed cropped to the body" in framing_warning(slice_.image, Preprocessing(geometry="full"))
    # Through the lung window alone, the grey air would pass for body: the slice would be analysed whole.
    assert min(body_span(slice_.image, body_box(slice_.render("lung")))) > 0.95


def test_a_real_ct_slice_cut_through_the_body_keeps_its_lungs():
    # pydicom's CT_small.dcm: a real CT slice, reconstructed so tightly that both lungs reach the slice's edge.
    slice_ = dicom.read_dicom(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    lungs = slice_.hu < dicom.AIR_HU
    assert lungs[0].any() and lungs[:, 0].any()  # air at the edge, yet not air around the patient
    assert not dicom.surrounding_air(slice_.hu).any()
    np.testing.assert_array_equal(np.asarray(slice_.image), np.asarray(slice_.render(dicom.MODEL_WINDOW)))
    assert (np.asarray(slice_.image)[lungs] > 10).all()  # -896 HU and up: 149 / 2230 * 255 = 17


def test_a_screenshot_saved_as_dicom_is_analysed_as_its_grey_levels_not_as_hounsfield_units():
    # A secondary capture of a CT screenshot: 8-bit grey levels, no rescale, modality OT. Read as Hounsfield units
    # through the lung window it came out nearly white (every value from 0 to 255 is above -150 HU).
    grey = np.asarray(Image.open(io.BytesIO(ct_png(size=96))).convert("L"))
    data = make_dicom(grey, slope=None, intercept=None, Modality="OT", identifying=False)
    slice_ = dicom.read_dicom(data)
    assert not slice_.hounsfield
    np.testing.assert_array_equal(np.asarray(load_image(data)), grey)
    with pytest.raises(DicomError, match="not in Hounsfield units"):
        slice_.render("lung")
    inverted = dicom.read_dicom(make_dicom(grey, slope=None, intercept=None, Modality="OT",
                                           photometric="MONOCHROME1"))
    np.testing.assert_array_equal(np.asarray(inverted.image), 255 - grey)  # shown as the file asks


def test_other_images_that_are_not_in_hounsfield_units_use_their_own_window_or_range():
    values = np.tile(np.arange(0, 4000, 4000 / 64), (64, 1)).astype(np.uint16)  # a 12-bit ramp, e.g. an MR slice
    windowed = np.asarray(dicom.read_dicom(make_dicom(values, slope=None, intercept=None, Modality="MR",
                                                      WindowCenter=1000, WindowWidth=2000)).image)
    assert windowed[0, 0] == 0 and windowed[0, 32] == 255 and 120 < windowed[0, 16] < 135  # 0..2000 spans the greys
    stretched = np.asarray(dicom.read_dicom(make_dicom(values, slope=None, intercept=None, Modality="MR")).image)
    assert stretched[0, 0] == 0 and stretched[0, -1] == 255 and 120 < stretched[0, 32] < 135  # its own range
    # A rescale that declares Hounsfield units counts whatever the modality says.
    declared = dicom.read_dicom(make_dicom(Modality="OT", RescaleType="HU"))
    assert declared.hounsfield and np.asarray(declared.render("lung"))[0, 0] == 55


def test_metadata_is_technical_only():
    result = dicom.read_dicom(make_dicom())
    assert result.metadata == {
        "modality": "CT",
        "rows": 64,
        "columns": 64,
        "pixel_spacing_mm": [0.7, 0.7],
        "slice_thickness_mm": 1.25,
        "kvp": 120.0,
        "photometric_interpretation": "MONOCHROME2",
        "bits_stored": 16,
        "number_of_frames": 1,
        "transfer_syntax": "Explicit VR Little Endian",
    }
    text = json.dumps(result.metadata) + repr(result)
    for keyword, value in IDENTIFYING.items():
        if keyword != "PatientSex":  # one letter; checked on the dataset below
            assert value not in text, keyword


def test_implicit_vr_and_missing_rescale_are_read():
    raw = hu_pattern().astype(np.int16)
    result = dicom.read_dicom(make_dicom(raw, slope=None, intercept=None, transfer_syntax=ImplicitVRLittleEndian))
    np.testing.assert_array_equal(result.hu, raw.astype(np.float32))


def test_enhanced_ct_rescale_in_functional_groups_is_applied():
    transformation = Dataset()
    transformation.RescaleSlope = 1
    transformation.RescaleIntercept = -1024
    transformation.RescaleType = "HU"
    group = Dataset()
    group.PixelValueTransformationSequence = [transformation]
    data = make_dicom(slope=None, intercept=None, SharedFunctionalGroupsSequence=[group])
    np.testing.assert_array_equal(dicom.read_dicom(data).hu, hu_pattern().astype(np.float32))


def test_no_pixel_data_is_refused_clearly():
    data = make_dicom(transfer_syntax=ExplicitVRLittleEndian, pixel_bytes=None, stored=None)
    without_pixels = dcmread(io.BytesIO(data))
    del without_pixels.PixelData
    buffer = io.BytesIO()
    without_pixels.save_as(buffer, enforce_file_format=True)
    with pytest.raises(DicomError, match="no pixel data"):
        dicom.read_dicom(buffer.getvalue())


def test_compression_without_a_decoder_is_refused_clearly():
    missing = [uid for uid in (JPEGLosslessSV1, JPEGLSLossless, HTJ2KLossless) if not get_decoder(uid).is_available]
    if not missing:
        pytest.skip("every candidate compressed transfer syntax has a decoder installed here")
    data = make_dicom(transfer_syntax=missing[0], pixel_bytes=encapsulate([b"\xff\xd8 not really jpeg \xff\xd9"]))
    with pytest.raises(DicomError, match="cannot decode here.*uncompressed or as PNG"):
        dicom.read_dicom(data)


def test_jpeg2000_lossless_is_decoded_exactly():
    stored = (hu_pattern() + 1024).astype(np.uint16)
    codestream = io.BytesIO()
    Image.fromarray(stored).save(codestream, format="JPEG2000", irreversible=False, no_jp2=True)
    data = make_dicom(stored, transfer_syntax=JPEG2000Lossless, pixel_bytes=encapsulate([codestream.getvalue()]))
    result = dicom.read_dicom(data)
    np.testing.assert_array_equal(result.hu, hu_pattern().astype(np.float32))
    assert result.metadata["transfer_syntax"] == "JPEG 2000 Image Compression (Lossless Only)"


@pytest.mark.parametrize("syntax", ["JPEGLosslessProcess14_1", "JPEGLosslessProcess14", "JPEGLSLossless"])
def test_jpeg_lossless_and_jpeg_ls_as_exported_by_a_pacs_are_decoded_exactly(tmp_path, syntax):
    import gdcm  # python-gdcm: pydicom's decoder for these; here it also encodes the file

    source, compressed = tmp_path / "slice.dcm", tmp_path / "compressed.dcm"
    source.write_bytes(phantom_dicom())
    reader = gdcm.ImageReader()
    reader.SetFileName(str(source))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(compressed))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    data = compressed.read_bytes()
    assert len(data) < len(source.read_bytes()) / 3  # really compressed
    result = dicom.read_dicom(data)
    assert result.metadata["transfer_syntax"].startswith("JPEG")
    np.testing.assert_array_equal(result.hu, np.rint(chest_phantom()).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(load_image(data)), np.asarray(dicom.read_dicom(phantom_dicom()).image))


def test_multi_frame_needs_an_explicit_frame():
    stack = np.stack([(hu_pattern() + 1024 + 100 * k).astype(np.uint16) for k in range(3)])
    data = make_dicom(stack, frames=3)
    with pytest.raises(DicomError, match="holds 3 frames"):
        dicom.read_dicom(data)
    third = dicom.read_dicom(data, frame=2)
    np.testing.assert_array_equal(third.hu, (hu_pattern() + 200).astype(np.float32))
    assert third.metadata["frame"] == 2 and third.metadata["number_of_frames"] == 3
    with pytest.raises(DicomError, match="Frame 3 does not exist"):
        dicom.read_dicom(data, frame=3)


def test_a_localizer_is_refused_and_an_axial_slice_of_the_same_series_is_read():
    with pytest.raises(DicomError, match="localizer .*not an axial slice"):
        dicom.read_dicom(make_dicom(ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]))
    assert dicom.read_dicom(make_dicom(ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])).hounsfield


def test_colour_dicom_is_refused():
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    data = make_dicom(rgb, photometric="RGB", SamplesPerPixel=3, BitsAllocated=8, BitsStored=8, HighBit=7,
                      PlanarConfiguration=0)
    with pytest.raises(DicomError, match="not a greyscale CT"):
        dicom.read_dicom(data)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_file_is_refused(cut):
    data = make_dicom()
    with pytest.raises(DicomError):
        dicom.read_dicom(data[: int(len(data) * cut)])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_damaged_files_raise_only_dicom_errors():
    """Truncated, bit-flipped and random files (a small fuzz) never leak a pydicom exception."""
    rng = np.random.default_rng(7)
    original = make_dicom()
    refused = 0
    for attempt in range(150):
        data = bytearray(original)
        if attempt % 3 == 0:
            data = data[: rng.integers(132, len(data))]
        elif attempt % 3 == 1:
            for position in rng.integers(132, 1000, size=4):
                data[position] = rng.integers(0, 256)
        else:
            data = bytearray(b"\0" * 128 + b"DICM" + rng.integers(0, 256, 800, dtype=np.uint8).tobytes())
        for function in (dicom.read_dicom, dicom.anonymize_dicom):
            try:
                function(bytes(data))
            except DicomError:
                refused += 1
    assert refused > 150  # most damaged files are refused (some bit flips land in harmless values)


def test_anonymize_removes_identifying_data_and_keeps_pixels():
    original = make_dicom()
    anonymised = dicom.anonymize_dicom(original)

    identifying = [v for k, v in IDENTIFYING.items() if k != "PatientSex"]
    for value in [*identifying, "ACME HOSPITAL PACS", "SECRET42", "Kildare"]:
        assert value.encode() not in anonymised, value
    before, after = dcmread(io.BytesIO(original)), dcmread(io.BytesIO(anonymised))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert after.get(keyword) and after.get(keyword) != before.get(keyword)
        assert str(before.get(keyword)).encode() not in anonymised
    assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
    assert after.SOPClassUID == CTImageStorage
    assert after.PatientName == "" and after.PatientID == "" and after.StudyDate == "" and after.PatientSex == ""
    assert "PatientAddress" not in after and "InstitutionName" not in after and "StudyDescription" not in after
    assert not any(element.tag.is_private for element in after)
    assert "RequestAttributesSequence" not in after
    assert after.PatientIdentityRemoved == "YES"

    np.testing.assert_array_equal(dicom.read_dicom(anonymised).hu, dicom.read_dicom(original).hu)
    assert dicom.read_dicom(anonymised).metadata == dicom.read_dicom(original).metadata


def test_anonymize_keeps_compressed_pixel_data_readable():
    stored = (hu_pattern() + 1024).astype(np.uint16)
    codestream = io.BytesIO()
    Image.fromarray(stored).save(codestream, format="JPEG2000", irreversible=False, no_jp2=True)
    data = make_dicom(stored, transfer_syntax=JPEG2000Lossless, pixel_bytes=encapsulate([codestream.getvalue()]))
    anonymised = dicom.anonymize_dicom(data)
    assert b"Doe^Johnathan" not in anonymised
    np.testing.assert_array_equal(dicom.read_dicom(anonymised).hu, hu_pattern().astype(np.float32))


def test_anonymize_refuses_burned_in_annotation():
    with pytest.raises(DicomError, match="burned-in"):
        dicom.anonymize_dicom(make_dicom(BurnedInAnnotation="YES"))


def test_load_image_reads_dicom_bytes_and_paths(tmp_path):
    data = make_dicom()
    path = tmp_path / "slice.dcm"
    path.write_bytes(data)
    expected = np.asarray(dicom.read_dicom(data).image)
    for source in (data, path, tmp_path / "slice.dcm"):
        image = load_image(source)
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), expected)


def test_load_image_turns_broken_dicom_into_an_image_error():
    data = make_dicom()
    without_pixels = dcmread(io.BytesIO(data))
    del without_pixels.PixelData
    buffer = io.BytesIO()
    without_pixels.save_as(buffer, enforce_file_format=True)
    with pytest.raises(ImageError, match="no pixel data"):
        load_image(buffer.getvalue())
