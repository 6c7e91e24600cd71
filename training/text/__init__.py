"""Text side of graphrec: item/entity texts, a transformers encoder, fine-tuning, TextLearner.

``TextEncoder(...).embed(item_texts(graph))`` gives the item features the GNN starts
from; :func:`fine_tune` first teaches the encoder which items users consume together;
:class:`TextLearner` is the content source of the hybrid ranker.
"""

from training.text.encoder import TextEncoder, default_model_path, mean_pool
from training.text.entities import entity_item_links, entity_vectors
from training.text.finetune import FineTuneConfig, FineTuneReport, fine_tune, info_nce
from training.text.learner import TextLearner
from training.text.similar import co_interaction_neighbors, neighbor_recall
from training.text.templates import ItemTextTemplate, entity_texts, item_texts

__all__ = [
    "FineTuneConfig",
    "FineTuneReport",
    "ItemTextTemplate",
    "TextEncoder",
    "TextLearner",
    "co_interaction_neighbors",
    "default_model_path",
    "entity_item_links",
    "entity_vectors",
    "entity_texts",
    "fine_tune",
    "info_nce",
    "item_texts",
    "mean_pool",
    "neighbor_recall",
]
