"""FREEDOM (Zhou & Shen, 2023) on the MMRec protocol, with MMRec's defaults.

Reference grid: dropout {0.8, 0.9} x reg_weight {0, 1e-5, 1e-4, 1e-3}, e.g.
  jaxrec train --config configs/freedom.py --workdir runs/freedom_baby \
      --config.dataset.path=../shared/data/baby
"""

from jaxrec.train.config import base_config


def get_config():
  config = base_config()
  config.model_name = "freedom"
  # Model section: keyword arguments of jaxrec.models.freedom.FREEDOM.
  config.model.embedding_size = 64
  config.model.feat_embed_dim = 64
  config.model.knn_k = 10
  config.model.mm_image_weight = 0.1
  config.model.n_mm_layers = 1
  config.model.n_ui_layers = 2
  config.model.dropout = 0.8
  config.model.reg_weight = 0.0
  config.model.propagation = "sparse"
  config.model.negative_sampler = "uniform"  # or dns / mixgcf: configs/freedom_{dns,mixgcf}.py
  config.model.n_negative_candidates = 16
  return config
