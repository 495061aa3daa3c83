"""BPR-MF (Rendle et al., 2009) as MMRec's ``BPR`` model defines it."""

from __future__ import annotations

from jaxrec.models import registry
from jaxrec.models.base import IDEmbeddingModel


@registry.register("mf")
class MF(IDEmbeddingModel):
  """Matrix factorisation: score(u, i) = <e_u, e_i>.

  64-d Xavier-uniform tables; loss = BPR + ``reg_weight`` * EmbLoss(e_u, e_i+, e_i-).
  """

  def embed(self, context, *, train):
    del context, train
    return self.user_embedding[...], self.item_embedding[...]
