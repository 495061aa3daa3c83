"""FREEDOM + DNS negatives (CCDRec paper, Table 3 baseline) on MMRec's FREEDOM defaults.

  jaxrec train --config configs/freedom_dns.py --config.dataset.path=../shared/data/baby
"""

import pathlib

from jaxrec.train.config import load_config_file


def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("freedom.py"))
  config.model.negative_sampler = "dns"
  config.model.n_negative_candidates = 16
  return config
