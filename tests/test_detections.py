"""Detection files (COCO results format) -> per-image (N, 5) arrays sorted by score; one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from corrtrack.posetrack import PoseTrackFormatError, load_detections


def _write(path, dets):
    path.write_text(json.dumps(dets))
    return path


def test_rows_sorted_by_score_and_filtered(tmp_path):
    f = _write(tmp_path / "dets.json", [
        {"image_id": 7, "bbox": [1, 2, 30, 40], "score": 0.3, "category_id": 1},
        {"image_id": 7, "bbox": [5, 6, 20, 20], "score": 0.9},                        # category defaults to 1
        {"image_id": 7, "bbox": [0, 0, 30, 30], "score": 0.95, "category_id": 2},     # not a person
        {"image_id": 7, "bbox": [0, 0, 1, 30], "score": 0.8},                         # degenerate box
        {"image_id": 8, "bbox": [0, 0, 10, 10], "score": 0.05},                       # below min_score
        {"image_id": 9, "bbox": [3, 4, 10, 12]}])                                     # score defaults to 1
    dets = load_detections(f, min_score=0.1)
    assert sorted(dets) == [7, 9]
    assert dets[7].dtype == np.float64 and dets[7].shape == (2, 5)
    np.testing.assert_array_equal(dets[7], [[5, 6, 20, 20, 0.9], [1, 2, 30, 40, 0.3]])
    np.testing.assert_array_equal(dets[9], [[3, 4, 10, 12, 1.0]])


def test_folder_of_files_merges_images(tmp_path):
    folder = tmp_path / "dets"
    folder.mkdir()
    _write(folder / "a.json", [{"image_id": 7, "bbox": [1, 2, 30, 40], "score": 0.5}])
    _write(folder / "b.json", [{"image_id": 8, "bbox": [1, 2, 30, 40], "score": 0.9},
                               {"image_id": 7, "bbox": [3, 3, 30, 40], "score": 0.7}])
    dets = load_detections(folder)
    assert sorted(dets) == [7, 8]
    np.testing.assert_array_equal(dets[7][:, 4], [0.7, 0.5])


@pytest.mark.parametrize("content, field", [
    ('[{"bbox": [1, 2, 3, 4]}]', "[0].image_id"),
    ('[{"image_id": 1, "bbox": [1, 2, 3]}]', "[0].bbox"),
    ('[{"image_id": 1, "bbox": [1, 2, 30, 40]}, {"image_id": 1, "bbox": [1, "2", 30, 40]}]', "[1].bbox[1]"),
    ('[{"image_id": 1, "bbox": [1, 2, 30, 40], "score": null}]', "[0].score"),
    ('[{"image_id": 1.5, "bbox": [1, 2, 30, 40]}]', "[0].image_id"),
    ('{"image_id": 1}', None),
    ('[{"image_id": 1, "bbox": [1, 2', None),
])
def test_malformed_files_name_file_and_field(tmp_path, content, field):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(PoseTrackFormatError) as e:
        load_detections(bad)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(bad))
    if field is not None:
        assert f"field '{field}'" in msg


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_detections(tmp_path / "missing.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no detection files"):
        load_detections(tmp_path / "empty")
