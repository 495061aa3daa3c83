"""BPR-MF (Rendle et al., 2009) on the MMRec protocol.

Paper numbers (CCDRec Table 2, Baby): R@5 .0208, R@10 .0344, N@5 .0138, N@10 .0183.

  jaxrec train --config configs/mf.py --workdir runs/mf_baby \
      --config.dataset.path=../shared/data/baby
"""

from jaxrec.train.config import base_config


def get_config():
  config = base_config()
  config.model_name = "mf"
  # Model section: keyword arguments of jaxrec.models.mf.MF.
  config.model.embedding_size = 64
  config.model.reg_weight = 0.1  # MMRec's grid: {2, 1, 0.1, 1e-2, 1e-3, 1e-4, 1e-5}.
  config.model.init = "xavier_normal"
  return config
