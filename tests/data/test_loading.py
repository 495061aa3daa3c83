import ml_collections
import numpy as np
import pytest

from jaxrec.data import DataError, load_dataset, make_synthetic

ROWS = "userID\titemID\trating\ttimestamp\tx_label\n" + "".join(
    f"{u}\t{i}\t5\t0\t{x}\n"
    for u, i, x in [(0, 0, 0), (0, 1, 0), (0, 2, 1), (0, 3, 2), (1, 1, 0), (1, 2, 0), (1, 0, 2)])


def _folder(tmp_path, name="toy", image=True, text=True):
  folder = tmp_path / name
  folder.mkdir()
  (folder / f"{name}.inter").write_text(ROWS)
  if image:
    np.save(folder / "image_feat.npy", np.ones((4, 6), np.float16))
  if text:
    np.save(folder / "text_feat.npy", np.eye(4, 3, dtype=np.float32))
  return folder


def _cfg(**kw):
  cfg = ml_collections.ConfigDict(dict(
      path="", name="", inter_file="", feature_files={"image": "image_feat.npy",
                                                      "text": "text_feat.npy"},
      required_modalities=(), synthetic={}, batch_size=64))  # Unrelated keys are ignored.
  cfg.update(kw)
  return cfg


def test_loads_a_folder_with_features(tmp_path):
  folder = _folder(tmp_path)
  ds = load_dataset(_cfg(path=str(folder), required_modalities=("image", "text")))
  assert (ds.name, ds.n_users, ds.n_items) == ("toy", 2, 4)
  assert (ds.train.nnz, ds.valid.nnz, ds.test.nnz) == (4, 1, 2)
  assert ds.features["image"].dtype == np.float32 and ds.features["image"].shape == (4, 6)
  np.testing.assert_array_equal(ds.features["text"], np.eye(4, 3))


def test_plain_mapping_defaults_and_single_inter_file(tmp_path):
  folder = _folder(tmp_path, name="shop", image=False)
  (folder / "shop.inter").rename(folder / "interactions.inter")
  ds = load_dataset({"path": str(folder)})  # Every other key takes its default.
  assert ds.name == "interactions" and list(ds.features) == ["text"]
  assert load_dataset({"path": str(folder), "name": "mine"}).name == "mine"
  ds = load_dataset({"path": str(folder / "interactions.inter"), "feature_files": {}})
  assert ds.features == {}


def test_name_picks_among_several_inter_files(tmp_path):
  folder = _folder(tmp_path)
  (folder / "other.inter").write_text(ROWS + "1\t3\t5\t0\t2\n")
  with pytest.raises(DataError, match=r"2 \*\.inter files"):
    load_dataset(_cfg(path=str(folder)))
  assert load_dataset(_cfg(path=str(folder), name="toy")).test.nnz == 2
  assert load_dataset(_cfg(path=str(folder), inter_file="other.inter")).test.nnz == 3


def test_folder_errors(tmp_path):
  with pytest.raises(DataError, match=r"dataset path .*missing does not exist"):
    load_dataset(_cfg(path=str(tmp_path / "missing")))
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match=r"empty: no \*\.inter file"):
    load_dataset(_cfg(path=str(tmp_path / "empty")))
  folder = _folder(tmp_path, image=False)
  with pytest.raises(DataError, match=r"inter_file .*nope\.inter does not exist"):
    load_dataset(_cfg(path=str(folder), inter_file="nope.inter"))
  with pytest.raises(DataError, match=r"required modality 'image': feature file .*image_feat"):
    load_dataset(_cfg(path=str(folder), required_modalities=["image"]))
  np.save(folder / "image_feat.npy", np.ones((3, 6)))
  with pytest.raises(DataError, match=r"image_feat\.npy\): 3 rows but .* 4 items"):
    load_dataset(_cfg(path=str(folder)))


def test_synthetic_default_and_overrides():
  ds = load_dataset(_cfg())
  reference = make_synthetic()
  assert ds.name == "synthetic" and (ds.n_users, ds.n_items) == (2000, 1000)
  np.testing.assert_array_equal(ds.train_edges, reference.train_edges)
  assert sorted(ds.features) == ["image", "text"]

  small = dict(n_users=50, n_items=30, mean_interactions=8, image_dim=0, text_dim=4, seed=3)
  ds = load_dataset(_cfg(name="tiny", synthetic=small, required_modalities=["text"]))
  assert (ds.name, ds.n_users, list(ds.features)) == ("tiny", 50, ["text"])
  with pytest.raises(DataError, match=r"'image' not in the synthetic .*available: \['text'\]"):
    load_dataset(_cfg(synthetic=small, required_modalities=["image"]))
  with pytest.raises(DataError, match=r"unknown synthetic option\(s\) n_user;"):
    load_dataset(_cfg(synthetic={"n_user": 5}))
