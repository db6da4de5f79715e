"""The students' demo gallery lists public dataset images per class, and nothing when the dataset is absent."""

from lungscan.gallery import gallery_images


def test_gallery_takes_a_few_images_per_class_from_the_test_split(tmp_path):
    for folder, count in (("adenocarcinoma", 3), ("large.cell.carcinoma", 1), ("normal", 12), ("squamous.cell.carcinoma", 2)):
        (tmp_path / "Data" / "test" / folder).mkdir(parents=True)
        for i in range(count):
            (tmp_path / "Data" / "test" / folder / f"{i:03d}.png").write_bytes(b"x")
    (tmp_path / "Data" / "test" / "normal" / "notes.txt").write_text("not an image")
    (tmp_path / "Data" / "test" / "unknown-class").mkdir()
    images = gallery_images(tmp_path, per_class=5)
    by_class = {}
    for image in images:
        by_class.setdefault(image.class_name, []).append(image.path.name)
    assert by_class == {
        "adenocarcinoma": ["000.png", "001.png", "002.png"],
        "large_cell_carcinoma": ["000.png"],
        "squamous_cell_carcinoma": ["000.png", "001.png"],
        "normal": ["000.png", "001.png", "002.png", "003.png", "004.png"],
    }
    assert [image.class_name for image in images][:3] == ["adenocarcinoma"] * 3


def test_missing_dataset_or_split_gives_an_empty_gallery(tmp_path):
    assert gallery_images(None) == []
    assert gallery_images(tmp_path / "absent") == []
    (tmp_path / "train").mkdir()
    assert gallery_images(tmp_path) == []
