"""VBPR (He & McAuley, 2016) on the MMRec protocol.

MMRec grid: reg_weight {2, 1, 0.1, 1e-2, 1e-3, 1e-4, 1e-5}, e.g.
  jaxrec train --config configs/vbpr.py --config.dataset.path=../shared/data/baby
"""

from jaxrec.train.config import base_config


def get_config():
  config = base_config()
  config.model_name = "vbpr"
  # Model section: keyword arguments of jaxrec.models.vbpr.VBPR.
  config.model.embedding_size = 64
  config.model.reg_weight = 0.1
  return config
