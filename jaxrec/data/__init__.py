"""Datasets: MMRec .inter files, modality features, the synthetic default."""

from jaxrec.data.dataset import CSR, Dataset
from jaxrec.data.features import load_features
from jaxrec.data.interactions import DataError, read_inter
from jaxrec.data.loading import load_dataset
from jaxrec.data.synthetic import make_synthetic, mmrec_split_counts
