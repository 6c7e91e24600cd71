"""The split forward pass: run a BERT-family encoder's lower blocks once, its upper blocks per step.

Fine-tuning only the top transformer blocks (:func:`~training.text.fine_tune`) leaves
the embeddings and the lower blocks unchanged, so their output is computed once and
kept (:class:`PrefixCache`); :meth:`~training.text.TextEncoder.encode_from` then runs
only the blocks above the cut (:func:`swapped_blocks`).
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import torch

from eval.checks import positive_int

if TYPE_CHECKING:
    from training.text.encoder import TextEncoder

__all__ = ["PREFIX_CACHE_BYTES", "PrefixCache", "check_texts", "swapped_blocks", "transformer_blocks"]

PREFIX_CACHE_BYTES = 256 * 2**20
"""Default memory budget of a :class:`PrefixCache` (hidden states kept, padding dropped)."""


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, after checking it is a sequence of ``str`` (not one string).

    Raises:
        TypeError: ``texts`` is a single string or holds a non-string.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of strings, got a single str; wrap it in a list")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be a str, got {type(text).__name__} ({text!r})")
    return texts


def transformer_blocks(model: torch.nn.Module) -> Optional[torch.nn.ModuleList]:
    """The transformer blocks of a BERT-family model (``model.encoder.layer``), or ``None``."""
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers) and hasattr(model, "embeddings"):
        return layers
    return None


class _Passthrough(torch.nn.Module):
    """Stands in for a model's embedding layer: hands ``inputs_embeds`` (prefix states) on unchanged."""

    def forward(self, inputs_embeds: torch.Tensor, **_: object) -> torch.Tensor:
        return inputs_embeds


@contextlib.contextmanager
def swapped_blocks(model: torch.nn.Module, *, blocks: Sequence[torch.nn.Module], embeddings: bool) -> Iterator[None]:
    """Run ``model`` with only ``blocks`` (and, if not ``embeddings``, no embedding layer)."""
    encoder = model.encoder
    saved_layers, saved_embeddings = encoder.layer, model.embeddings
    encoder.layer = torch.nn.ModuleList(blocks)
    if not embeddings:
        model.embeddings = _Passthrough()
    try:
        yield
    finally:
        encoder.layer, model.embeddings = saved_layers, saved_embeddings


class PrefixCache:
    """Hidden states of texts after the encoder's first ``split`` transformer blocks.

    Fine-tuning only the top blocks leaves the embeddings and the lower blocks
    unchanged, so their output for a text is computed once (in eval mode, without
    gradients) and every later step, and the final embedding, runs only the top
    blocks (:meth:`TextEncoder.encode_from`). States are kept per text with the
    padding dropped, up to ``budget_bytes``; texts beyond it are recomputed when asked.
    The cache is valid while the frozen weights are unchanged (:meth:`valid`).

    Args:
        encoder: the encoder whose lower blocks produce the states.
        split: blocks below the cut (``1 <= split < encoder.num_blocks``).
        max_length: tokens per text.
        budget_bytes: memory for stored states.

    Raises:
        ValueError: the encoder cannot be split, or ``split`` is out of range.
    """

    def __init__(
        self, encoder: TextEncoder, split: int, *, max_length: int, budget_bytes: int = PREFIX_CACHE_BYTES
    ) -> None:
        if not encoder.splittable:
            raise ValueError(f"{encoder!r} cannot be split into lower and upper blocks")
        positive_int(split, "split", minimum=1, maximum=encoder.num_blocks - 1)
        self.encoder = encoder
        self.split = int(split)
        self.max_length = int(max_length)
        self.budget_bytes = int(budget_bytes)
        self.stored_bytes = 0
        self._states: dict[str, torch.Tensor] = {}
        self._digest = self._frozen_digest()

    def __len__(self) -> int:
        return len(self._states)

    def _frozen_digest(self) -> str:
        digest = hashlib.sha256()
        modules = [self.encoder.model.embeddings, *list(transformer_blocks(self.encoder.model))[: self.split]]
        for module in modules:
            for tensor in module.state_dict().values():
                digest.update(tensor.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().data)
        return digest.hexdigest()

    def valid(self) -> bool:
        """Whether the embeddings and lower blocks still hold the weights the states came from."""
        return self._frozen_digest() == self._digest

    def states(self, texts: Sequence[str], keep: Optional[Sequence[bool]] = None) -> list[torch.Tensor]:
        """The ``[tokens_i, d]`` prefix state of each text; computes the missing ones.

        Args:
            texts: the texts.
            keep: per text, whether a newly computed state is stored (within the
                budget); ``None`` stores every one.
        """
        texts = check_texts(texts)
        missing = sorted({text for text in texts if text not in self._states})
        fresh = dict(zip(missing, self.encoder.prefix_states(missing, self.split, max_length=self.max_length)))
        wanted = {text for i, text in enumerate(texts) if keep is None or keep[i]}
        for text, state in fresh.items():
            size = state.numel() * state.element_size()
            if text in wanted and self.stored_bytes + size <= self.budget_bytes:
                self._states[text] = state
                self.stored_bytes += size
        return [self._states[text] if text in self._states else fresh[text] for text in texts]
