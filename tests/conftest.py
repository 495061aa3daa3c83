import os

import pytest

# Tests run on CPU; keep XLA from grabbing every core's worth of threads per process.
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def tiny_config(name: str = "lightgcn"):
  """A CPU-friendly config: small synthetic data, a few epochs."""
  import pathlib

  from jaxrec.train.config import load_config_file

  config = load_config_file(pathlib.Path(__file__).resolve().parents[1] / "configs" / f"{name}.py")
  config.dataset.synthetic.n_users = 300
  config.dataset.synthetic.n_items = 200
  config.dataset.synthetic.mean_interactions = 15
  config.dataset.synthetic.image_dim = 32
  config.dataset.synthetic.text_dim = 16
  config.train_batch_size = 256
  config.eval_batch_size = 128
  config.epochs = 4
  config.model.embedding_size = 16
  return config


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
  # Derived-data caches (kNN graphs) go to a temporary folder, not ~/.cache.
  os.environ["JAXREC_CACHE_DIR"] = str(tmp_path_factory.mktemp("jaxrec_cache"))


@pytest.fixture
def make_config():
  return tiny_config
