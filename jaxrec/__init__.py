"""jaxrec: multimodal recommendation in JAX/Flax on the MMRec protocol."""

__version__ = "0.1.0"
