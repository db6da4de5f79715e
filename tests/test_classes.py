import pytest

from lungscan.classes import CLASS_NAMES, class_from_folder, display_name
from lungscan.errors import DatasetError


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib", "adenocarcinoma"),
        ("large.cell.carcinoma_left.hilum_T2_N2_M0_IIIa", "large_cell_carcinoma"),
        ("squamous.cell.carcinoma_left.hilum_T1_N2_M0_IIIa", "squamous_cell_carcinoma"),
        ("normal", "normal"),
        ("adenocarcinoma", "adenocarcinoma"),
        ("large.cell.carcinoma", "large_cell_carcinoma"),
        ("squamous.cell.carcinoma", "squamous_cell_carcinoma"),
        ("large_cell_carcinoma", "large_cell_carcinoma"),
        ("squamous_cell_carcinoma", "squamous_cell_carcinoma"),
        ("Normal", "normal"),
    ],
)
def test_every_known_folder_layout_maps_to_its_class(folder, expected):
    assert class_from_folder(folder) == expected


@pytest.mark.parametrize("folder", ["benign", "adeno", "normalish", "small.cell.carcinoma", ""])
def test_unknown_folders_are_refused_with_the_valid_names(folder):
    with pytest.raises(DatasetError, match="adenocarcinoma"):
        class_from_folder(folder)


def test_class_order_and_display_names():
    assert CLASS_NAMES == ("adenocarcinoma", "large_cell_carcinoma", "squamous_cell_carcinoma", "normal")
    assert display_name("large_cell_carcinoma") == "Large cell carcinoma"
