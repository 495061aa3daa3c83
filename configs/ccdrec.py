"""CCDRec (AAAI 2025) on FREEDOM with the official code's shipped defaults.

Official grid: diff_weight {0.5, 1, 2}. Ablations (paper Fig. 3):
  --config.model.negative_sampling=uniform      # FREEDOM + DMA
  --config.model.negative_sampling=final_pool   # FREEDOM + DMA + NDI
Paper readings: --config.model.snapshots=paper --config.model.chain_from_noise=True
  --config.model.estimator_layers=2 --config.model.estimator_residual=True ...

  jaxrec train --config configs/ccdrec.py                      # synthetic default
  jaxrec train --config configs/ccdrec.py --config.dataset.path=../shared/data/baby
"""

import pathlib

from jaxrec.train.config import load_config_file


def get_config():
  # The FREEDOM backbone's keys and defaults come from configs/freedom.py.
  config = load_config_file(pathlib.Path(__file__).with_name("freedom.py"))
  config.model_name = "ccdrec"
  # CCDRec draws its own hard negatives (CNS) instead of FREEDOM's DNS / MixGCF option.
  del config.model["negative_sampler"], config.model["n_negative_candidates"]
  config.learning_rate = 5e-4
  config.train_batch_size = 512
  # Model section: keyword arguments of jaxrec.models.ccdrec.CCDRec (backbone above).
  config.model.timesteps = 20
  config.model.beta_start = 1e-4
  config.model.beta_end = 0.02
  config.model.beta_schedule = "linear"
  config.model.diff_weight = 0.5
  config.model.fusion_weight = 0.5
  config.model.omega = 0.8
  config.model.negative_sampling = "curriculum"
  config.model.curriculum_start = 5
  config.model.curriculum_step = 5
  config.model.curriculum_end = 30
  config.model.candidate_fraction = 0.1
  config.model.sample_k = 0.1
  config.model.snapshots = "official"
  config.model.chain_from_noise = False
  config.model.stochastic_chain = True
  config.model.estimator_layers = 1
  config.model.estimator_heads = 1
  config.model.estimator_residual = False
  config.model.estimator_feed_forward = False
  return config
