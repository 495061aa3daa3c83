"""LightGCN (He et al., 2020) on the MMRec protocol.

Paper numbers (CCDRec Table 2, Baby): R@5 .0307, R@10 .0488, N@5 .0204, N@10 .0263.

  jaxrec train --config configs/lightgcn.py --workdir runs/lightgcn_baby \
      --config.dataset.path=../shared/data/baby
Without a dataset path it trains on the embedded synthetic dataset.
"""

from jaxrec.train.config import base_config


def get_config():
  config = base_config()
  config.model_name = "lightgcn"
  # Model section: keyword arguments of jaxrec.models.lightgcn.LightGCN.
  config.model.embedding_size = 64
  config.model.n_layers = 2
  config.model.reg_weight = 1e-3  # Selected on valid Recall@20 from {1e-3, 1e-4, 1e-5}.
  config.model.propagation = "sparse"
  config.model.init = "xavier_uniform"
  return config
