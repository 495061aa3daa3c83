"""BPR-MF (Rendle et al., 2009) as MMRec's ``BPR`` model defines it."""

from __future__ import annotations

from flax import nnx

from jaxrec.data import Dataset
from jaxrec.models import registry
from jaxrec.models.base import IDEmbeddingModel


@registry.register("mf")
class MF(IDEmbeddingModel):
  """Matrix factorisation: score(u, i) = <e_u, e_i>.

  64-d tables, Xavier-NORMAL initialised as MMRec's BPR does
  (``xavier_normal_initialization``; LightGCN uses Xavier-uniform);
  loss = BPR + ``reg_weight`` * EmbLoss(e_u, e_i+, e_i-). MMRec's grid:
  reg_weight in {2, 1, 0.1, 1e-2, 1e-3, 1e-4, 1e-5}.
  """

  def __init__(
      self,
      dataset: Dataset,
      *,
      rngs: nnx.Rngs,
      embedding_size: int = 64,
      reg_weight: float = 0.1,
      init: str = "xavier_normal",
  ):
    super().__init__(dataset, rngs=rngs, embedding_size=embedding_size, reg_weight=reg_weight,
                     init=init)

  def embed(self, context, *, train):
    del context, train
    return self.user_embedding[...], self.item_embedding[...]
