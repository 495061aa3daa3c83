"""Pure, jittable losses (``optax.losses`` style): arrays in, arrays out.

Conventions: the leading axis is the batch axis; masks are called ``where``;
``reduce_fn=None`` returns the unreduced per-example loss.
"""

from jaxrec.losses._pairwise import bpr_loss
from jaxrec.losses._regularization import emb_loss, l2_reg

bpr = bpr_loss

__all__ = ["bpr", "bpr_loss", "emb_loss", "l2_reg"]
