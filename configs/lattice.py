"""LATTICE (Zhang et al., 2021) on the MMRec protocol, with MMRec's defaults (LATTICE.yaml).

Reference grid: learning_rate {1e-4, 5e-4, 1e-3, 5e-3} x reg_weight {0, 1e-5, 1e-4, 1e-3};
MMRec decays the learning rate per epoch by 0.96 ** (epoch / 50) (learning_rate_scheduler
[0.96, 50]). E.g.
  jaxrec train --config configs/lattice.py --workdir runs/lattice_baby \
      --config.dataset.path=../shared/data/baby
"""

from jaxrec.train.config import base_config


def get_config():
  config = base_config()
  config.model_name = "lattice"
  # Model section: keyword arguments of jaxrec.models.lattice.LATTICE.
  config.model.embedding_size = 64
  config.model.feat_embed_dim = 64
  config.model.knn_k = 10
  config.model.lambda_coeff = 0.9
  config.model.n_layers = 1
  config.model.n_ui_layers = 2  # len(weight_size) = len([64, 64]).
  config.model.cf_model = "lightgcn"
  config.model.reg_weight = 0.0
  config.model.freeze_features = False  # The reference trains the raw feature tables.
  config.model.propagation = "sparse"
  config.model.knn_block_size = 1024
  config.learning_rate_scheduler = (0.96, 50)  # MMRec: lr * 0.96 ** (epoch / 50).
  return config
