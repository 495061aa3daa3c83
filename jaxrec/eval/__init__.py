"""MMRec-protocol evaluation: full ranking over all items, top-K metrics per user."""

from jaxrec.eval.metrics import metric_keys, topk_metrics
from jaxrec.eval.ranking import Evaluator, dot_scores

__all__ = ["Evaluator", "dot_scores", "metric_keys", "topk_metrics"]
