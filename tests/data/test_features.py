import logging

import numpy as np
import pytest

from jaxrec.data import DataError, load_features
from jaxrec.data.features import validate_features

FILES = {"image": "image_feat.npy", "text": "text_feat.npy"}


def _save(tmp_path, name, array):
  np.save(tmp_path / name, array)


def test_loads_and_casts_float16_to_float32(tmp_path):
  image = np.random.default_rng(0).random((5, 8)).astype(np.float16)
  text = np.arange(15, dtype=np.float64).reshape(5, 3)
  _save(tmp_path, "image_feat.npy", image)
  _save(tmp_path, "text_feat.npy", text)
  feats = load_features(tmp_path, FILES, 5, required=("text",))
  assert list(feats) == ["image", "text"]
  assert feats["image"].dtype == np.float32 and feats["text"].dtype == np.float32
  np.testing.assert_array_equal(feats["image"], image.astype(np.float32))
  np.testing.assert_array_equal(feats["text"], text)


def test_missing_optional_file_is_skipped_and_logged(tmp_path, caplog):
  _save(tmp_path, "text_feat.npy", np.ones((4, 2), np.float32))
  with caplog.at_level(logging.INFO, logger="jaxrec.data.features"):
    feats = load_features(tmp_path, {**FILES, "audio": ""}, 4)
  assert list(feats) == ["text"]
  assert "image_feat.npy does not exist" in caplog.text
  assert load_features(tmp_path, {}, 4) == {}


def test_missing_required_file(tmp_path):
  with pytest.raises(DataError, match=r"required modality 'image': feature file .*image_feat"):
    load_features(tmp_path, FILES, 4, required=("image",))
  with pytest.raises(DataError, match=r"'audio' have no entry in feature_files"):
    load_features(tmp_path, FILES, 4, required=("audio",))


@pytest.mark.parametrize(
    "array, pattern",
    [
        (np.ones((6, 2)), r"'text' features \(.*text_feat\.npy\): 6 rows but .* 4 items"),
        (np.ones(4), r"text_feat\.npy\): expected a 2-D \[n_items, dim\] array, got shape \(4,\)"),
        (np.ones((4, 2, 2)), r"expected a 2-D .* shape \(4, 2, 2\)"),
        (np.ones((4, 0)), r"no feature columns"),
        (np.array([[1.0, np.nan], [0, 0], [np.inf, np.nan], [0, 0]]),
         r"text_feat\.npy\): 3 non-finite value\(s\) .* in 2 row\(s\); first bad row .* is 0"),
        (np.array([[0.0], [0.0], [1e300], [0.0]]), r"1 non-finite .* first bad row .* is 2"),
        (np.array([["a"], ["b"], ["c"], ["d"]]), r"dtype <U1 is not a real number type"),
    ],
)
def test_bad_arrays(tmp_path, array, pattern):
  _save(tmp_path, "text_feat.npy", array)
  with pytest.raises(DataError, match=pattern):
    load_features(tmp_path, FILES, 4)


def test_unreadable_file(tmp_path):
  (tmp_path / "text_feat.npy").write_bytes(b"not a npy file")
  with pytest.raises(DataError, match=r"text_feat\.npy: cannot read 'text' features"):
    load_features(tmp_path, FILES, 4)


def test_validate_features_without_sources():
  out = validate_features({"a": np.zeros((3, 2), np.int64)}, 3)
  assert out["a"].dtype == np.float32
  with pytest.raises(DataError, match=r"^'a' features: 2 rows"):
    validate_features({"a": np.zeros((2, 2))}, 3)
