"""CCDRec on the LATTICE backbone (paper Table 2): LATTICE's defaults + CCDRec's.

The diffusion / curriculum settings and CCDRec's training settings (batch 512,
lr 5e-4) come from configs/ccdrec.py; everything else (incl. the lr decay
[0.96, 50]) from configs/lattice.py. The official code ships no LATTICE variant.

  jaxrec train --config configs/ccdrec_lattice.py --config.dataset.path=../shared/data/baby
"""

import pathlib

from jaxrec.models.ccdrec import diffusion_options
from jaxrec.train.config import load_config_file

HERE = pathlib.Path(__file__).parent


def get_config():
  config = load_config_file(HERE / "lattice.py")
  ccdrec = load_config_file(HERE / "ccdrec.py")
  config.model_name = "ccdrec_lattice"
  config.learning_rate = ccdrec.learning_rate
  config.train_batch_size = ccdrec.train_batch_size
  for key in diffusion_options():
    config.model[key] = ccdrec.model[key]
  return config
