"""TextEncoder: pooling, batching, the content-hash cache, saving; one test on the real weights.

Mechanics run on a tiny randomly initialised BERT (built once per session by
:func:`tiny_model_dir`, which the other ``test_text_*`` modules import); the
packaged all-MiniLM-L6-v2 is loaded once, for a handful of texts.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import TOPIC_WORDS
from training.text import TextEncoder, default_model_path, mean_pool

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_model(directory, *, seed: int = 0) -> str:
    """Write a 2-layer, 32-wide random BERT and a WordPiece tokenizer into ``directory``."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = sorted({w for topic in TOPIC_WORDS for w in topic} | {"creator", "genre", "of", "g0", "g1", "g2", "g3"})
    vocab = _SPECIAL + list(".,:;'()-") + [str(d) for d in range(10)] + letters + ["##" + c for c in letters]
    vocab += ["##" + str(d) for d in range(10)] + words
    vocab_file = directory / "vocab.txt"
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # vocab.txt + tokenizer_config.json is the layout every transformers version reads.
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}), encoding="utf-8"
    )
    tokenizer = AutoTokenizer.from_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a loaded machine OpenMP's
    barriers make their small kernels 100x slower; the setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny(tiny_model_dir) -> TextEncoder:
    return TextEncoder(tiny_model_dir, max_length=16, batch_size=4)


def count_forwards(encoder: TextEncoder) -> list:
    calls = []
    encoder.model.register_forward_hook(lambda module, args, output: calls.append(1))
    return calls


TEXTS = ["space rocket alien", "love wedding kiss", "murder detective clue 7", "dragon wizard", "orbit", "a b c d e"]


def test_tiny_tokenizer_knows_the_topic_words(tiny):
    tokens = tiny.tokenizer.tokenize("Rocket alien 12. genre: g0")
    assert tokens == ["rocket", "alien", "1", "##2", ".", "genre", ":", "g0"]


def test_embed_shape_dtype_unit_norm(tiny):
    vectors = tiny.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert tiny.embed([]).shape == (0, 32)


def test_embedding_is_independent_of_batching_and_padding(tiny_model_dir):
    one = TextEncoder(tiny_model_dir, max_length=16, batch_size=1).embed(TEXTS)
    many = TextEncoder(tiny_model_dir, max_length=16, batch_size=64).embed(TEXTS)
    np.testing.assert_allclose(one, many, atol=1e-5)
    # Mean pooling ignores padding: a text's vector does not depend on its batch mates.
    alone = TextEncoder(tiny_model_dir, max_length=16).embed(["orbit"])
    np.testing.assert_allclose(alone[0], many[4], atol=1e-5)


def test_mean_pool_ignores_masked_tokens():
    hidden = torch.tensor([[[3.0, 4.0], [100.0, -7.0]], [[1.0, 0.0], [0.0, 1.0]]])
    mask = torch.tensor([[1, 0], [1, 1]])
    pooled = mean_pool(hidden, mask)
    np.testing.assert_allclose(pooled.numpy(), [[0.6, 0.8], [2**-0.5, 2**-0.5]], atol=1e-6)


def test_truncation_follows_max_length(tiny_model_dir):
    encoder = TextEncoder(tiny_model_dir, max_length=4)
    short, long = encoder.embed(["space rocket alien galaxy", "space rocket alien galaxy orbit dragon"])
    # [CLS] + 2 tokens + [SEP]: both texts reduce to "space rocket".
    np.testing.assert_allclose(short, long, atol=1e-6)
    wide = TextEncoder(tiny_model_dir, max_length=16).embed(
        ["space rocket alien galaxy", "space rocket alien galaxy orbit"]
    )
    assert not np.allclose(wide[0], wide[1], atol=1e-3)


def test_memory_cache_skips_the_model_and_deduplicates(tiny):
    calls = count_forwards(tiny)
    first = tiny.embed(TEXTS + TEXTS[:2])
    assert len(calls) == 2  # 6 distinct texts in batches of 4
    np.testing.assert_array_equal(first[:2], first[-2:])
    again = tiny.embed(TEXTS[::-1])
    assert len(calls) == 2
    np.testing.assert_array_equal(again, first[: len(TEXTS)][::-1])


def test_disk_cache_is_reused_by_a_new_encoder(tiny_model_dir, tmp_path):
    writer = TextEncoder(tiny_model_dir, max_length=16, cache_dir=tmp_path)
    expected = writer.embed(TEXTS)
    shards = list(tmp_path.rglob("*.safetensors"))
    assert len(shards) == 1
    assert not any(p.suffix in {".pkl", ".pickle", ".npz"} for p in tmp_path.rglob("*"))
    reader = TextEncoder(tiny_model_dir, max_length=16, cache_dir=tmp_path)
    calls = count_forwards(reader)
    np.testing.assert_array_equal(reader.embed(TEXTS), expected)
    assert calls == []
    # max_length is part of the key: another length misses the cache.
    other = TextEncoder(tiny_model_dir, max_length=3, cache_dir=tmp_path)
    calls = count_forwards(other)
    other.embed(TEXTS[:1])
    assert len(calls) == 1


def test_corrupt_cache_shard_is_reported(tiny_model_dir, tmp_path):
    TextEncoder(tiny_model_dir, max_length=16, cache_dir=tmp_path).embed(TEXTS)
    shard = next(tmp_path.rglob("*.safetensors"))
    shard.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="unreadable"):
        TextEncoder(tiny_model_dir, max_length=16, cache_dir=tmp_path).embed(TEXTS)


def test_changed_weights_change_the_fingerprint_and_miss_the_cache(tiny):
    before = tiny.embed(TEXTS)
    old = tiny.fingerprint
    with torch.no_grad():
        tiny.model.encoder.layer[-1].output.dense.weight.mul_(1.5)
    assert tiny.refresh_fingerprint() != old
    calls = count_forwards(tiny)
    after = tiny.embed(TEXTS)
    assert len(calls) == 2
    assert not np.allclose(before, after, atol=1e-4)


def test_save_writes_safetensors_that_automodel_reloads(tiny, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    with torch.no_grad():
        tiny.model.embeddings.word_embeddings.weight[10:20].add_(0.5)
    tiny.refresh_fingerprint()
    expected = tiny.embed(TEXTS)
    tiny.save(tmp_path / "tuned")
    names = {p.name for p in (tmp_path / "tuned").iterdir()}
    assert "model.safetensors" in names and not any(n.endswith(".bin") for n in names)
    AutoModel.from_pretrained(tmp_path / "tuned")
    AutoTokenizer.from_pretrained(tmp_path / "tuned")
    reloaded = TextEncoder(tmp_path / "tuned", max_length=16)
    assert reloaded.fingerprint == tiny.fingerprint
    np.testing.assert_allclose(reloaded.embed(TEXTS), expected, atol=1e-6)
    with pytest.raises(FileExistsError):
        tiny.save(tmp_path / "tuned")


def test_input_validation(tiny, tiny_model_dir, tmp_path):
    with pytest.raises(TypeError, match="single str"):
        tiny.embed("space rocket")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got int"):
        tiny.embed(["space", 3])
    with pytest.raises(ValueError, match="max_length must be an integer >= 1, got 0"):
        TextEncoder(tiny_model_dir, max_length=0)
    with pytest.raises(ValueError, match="could not be loaded"):
        TextEncoder(tmp_path / "no-model-here")


def test_default_model_path_is_the_packaged_minilm():
    path = default_model_path()
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def test_real_packaged_encoder_on_a_handful_of_texts():
    """The one test on the real all-MiniLM-L6-v2: meaning, not surface form, decides."""
    encoder = TextEncoder(max_length=32, batch_size=8)
    texts = [
        "Apollo 13: astronauts in a damaged spacecraft try to return to Earth",
        "A rocket crew stranded in orbit fights to get home",
        "Sleepless in Seattle: a widower and a journalist fall in love",
        "Four Weddings and a Funeral, a romantic comedy",
        "Se7en: two detectives hunt a serial killer",
    ]
    vectors = encoder.embed(texts)
    assert vectors.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2 and sims[0, 1] > sims[0, 4] + 0.2
    assert sims[2, 3] > sims[2, 4]
    # The pooled vector matches the sentence-transformers recipe: mean pooling + L2.
    batch = encoder.tokenizer(texts[:1], return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(**batch).last_hidden_state[0]
    reference = torch.nn.functional.normalize(hidden.mean(0), dim=0).numpy()
    np.testing.assert_allclose(vectors[0], reference, atol=1e-5)
