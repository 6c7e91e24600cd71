"""TextLearner: the learner contract (both profiles), new items, cold items, saving."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.training.contract import LearnerContract
from tests.training.test_text_encoder import one_torch_thread, tiny_model_dir  # noqa: F401  (fixtures)
from training.text import TextEncoder, TextLearner, fine_tune, item_texts

_MODEL: dict = {}


@pytest.fixture(autouse=True)
def _remember_model(tiny_model_dir):
    """The contract's ``make_learner(seed)`` takes no fixtures; the tiny model's path waits here."""
    _MODEL["path"] = tiny_model_dir


def tiny_learner(seed: int, **overrides) -> TextLearner:
    settings = dict(
        model=_MODEL["path"],
        max_length=16,
        neighbors=10,
        fine_tune_steps=0,
        fine_tune_batch_size=16,
        fine_tune_neighbors=10,
        fine_tune_lr=3e-3,
        fine_tune_layers=None,
        seed=seed,
    )
    settings.update(overrides)
    return TextLearner(**settings)


class TestTextLearnerKnn(LearnerContract):
    def make_learner(self, seed: int) -> TextLearner:
        return tiny_learner(seed)


# On the structured graph the text already names the taste cluster (the genre token),
# so fine-tuning has little left to add for users and is kept short here; what it
# adds is tested item-side in test_text_finetune.py and measured on ml-100k in
# bench/text_finetune.py.
class TestTextLearnerFineTunedMean(LearnerContract):
    def make_learner(self, seed: int) -> TextLearner:
        return tiny_learner(seed, profile="mean", fine_tune_steps=20)


def fitted(structured_graph, **overrides) -> TextLearner:
    """A learner fitted as the contract fits them (``overrides`` on :func:`tiny_learner`)."""
    return tiny_learner(0, **overrides).fit(
        structured_graph, structured_graph.matrix("train", weighted=True), valid_items=structured_graph.matrix("valid")
    )


def fine_tuned(structured_graph) -> TextLearner:
    return TestTextLearnerFineTunedMean().fitted(structured_graph)


def test_knn_scores_are_weighted_text_similarities(structured_graph):
    learner = fitted(structured_graph, neighbors=5)
    vectors = learner.item_embeddings()
    history = sp.csr_matrix(([2.0, 1.0], ([0, 0], [3, 10])), shape=(1, structured_graph.num_items))
    scores = learner.score_new_users(history).numpy()[0]
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.zeros(structured_graph.num_items)
    for item, weight in ((3, 2.0), (10, 1.0)):
        top = np.argsort(-sims[item])[:5]
        expected[top] += weight * np.maximum(sims[item, top], 0)
    np.testing.assert_allclose(scores, expected / 3.0, atol=1e-5)


def test_mean_profile_is_the_normalised_weighted_mean(structured_graph):
    learner = fitted(structured_graph, profile="mean")
    vectors = learner.item_embeddings()
    history = sp.csr_matrix(([2.0, 1.0], ([0, 0], [3, 10])), shape=(1, structured_graph.num_items))
    profile = 2.0 * vectors[3] + vectors[10]
    profile /= np.linalg.norm(profile)
    np.testing.assert_allclose(learner.score_new_users(history).numpy()[0], vectors @ profile, atol=1e-5)
    users = learner.user_embeddings()
    assert users.shape == (structured_graph.num_users, vectors.shape[1])
    np.testing.assert_allclose(np.linalg.norm(users[np.diff(learner.history_.indptr) > 0], axis=1), 1.0, atol=1e-5)


def test_fit_embeds_with_the_encoder_it_fine_tuned(structured_graph, tiny_model_dir):
    learner = fine_tuned(structured_graph)
    report = learner.fine_tune_report_
    assert report is not None and report.steps == 20 and report.losses == learner.fine_tune_report_.losses
    encoder = TextEncoder(tiny_model_dir, max_length=16)
    fine_tune(encoder, structured_graph, structured_graph.matrix("train", weighted=True), learner.fine_tune_config())
    assert encoder.fingerprint == learner.encoder.fingerprint == report.fingerprint
    np.testing.assert_allclose(encoder.embed(item_texts(structured_graph)), learner.item_embeddings(), atol=1e-6)
    assert fitted(structured_graph).fine_tune_report_ is None


@pytest.mark.parametrize("profile", ["knn", "mean"])
def test_cold_items_are_scored_from_their_text(structured_graph, profile):
    """Items with no train interaction at all still rank by topic for a user of that topic."""
    topic = np.arange(structured_graph.num_items) % 4
    cold = np.arange(1, structured_graph.num_items, 3)  # every topic has cold items
    keep = np.ones(structured_graph.num_items, np.float32)
    keep[cold] = 0.0
    train = (structured_graph.matrix("train", weighted=True) @ sp.diags(keep)).tocsr()
    train.eliminate_zeros()
    learner = tiny_learner(0, profile=profile).fit(structured_graph, train)
    history = sp.csr_matrix(
        (np.ones(4, np.float32), (np.zeros(4, int), [4, 8, 12, 20])), shape=(1, structured_graph.num_items)
    )  # four warm topic-0 items
    scores = learner.score_new_users(history).numpy()[0]
    same, other = scores[cold[topic[cold] == 0]], scores[cold[topic[cold] != 0]]
    auc = (same[:, None] > other[None, :]).mean()  # share of (same, other) pairs ordered right
    assert len(same) >= 5 and auc > 0.9, auc
    # The best-scored cold items are of the user's topic.
    best = cold[np.argsort(-scores[cold])[:3]]
    assert (topic[best] == 0).all(), topic[best]


def test_new_items_embed_like_the_catalogue(structured_graph):
    learner = fine_tuned(structured_graph)
    row = structured_graph.items.iloc[7].to_dict()
    np.testing.assert_allclose(learner.embed_items([row])[0], learner.item_embeddings()[7], atol=1e-5)
    fresh = learner.embed_items([{"title": "galaxy orbit rocket 99", "genre": "g0"}])
    assert fresh.shape == (1, learner.item_embeddings().shape[1])


def test_saved_fine_tuned_learner_reloads_its_encoder(structured_graph, tmp_path):
    from transformers import AutoModel

    learner = fine_tuned(structured_graph)
    learner.save(tmp_path / "text")
    assert (tmp_path / "text" / "encoder" / "model.safetensors").is_file()
    AutoModel.from_pretrained(tmp_path / "text" / "encoder")
    loaded = TextLearner.load(tmp_path / "text")
    row = structured_graph.items.iloc[7].to_dict()
    np.testing.assert_allclose(loaded.embed_items([row]), learner.embed_items([row]), atol=1e-5)
    assert loaded.encoder.fingerprint == learner.encoder.fingerprint
    # Loading and saving again keeps the fine-tuned encoder.
    loaded.save(tmp_path / "again")
    assert (tmp_path / "again" / "encoder" / "model.safetensors").is_file()


def test_plain_learner_saves_no_encoder(structured_graph, tmp_path):
    learner = TestTextLearnerKnn().fitted(structured_graph)
    learner.save(tmp_path / "plain")
    assert not (tmp_path / "plain" / "encoder").exists()
    loaded = TextLearner.load(tmp_path / "plain")
    new_item = [{"title": "love heart 3"}]
    np.testing.assert_allclose(loaded.embed_items(new_item), learner.embed_items(new_item), atol=1e-6)


def test_learner_saved_under_the_old_argument_names_loads(structured_graph, tmp_path):
    """Before issue 15's renames a text learner saved the argument names of training/renames.py's TEXT."""
    import json

    learner = fitted(structured_graph, neighbors=7, fine_tune_neighbors=9, fine_tune_lr=4e-3)
    learner.save(tmp_path / "text")
    path = tmp_path / "text" / "config.json"
    saved = json.loads(path.read_text())
    old = {"neighbors": "neighbours", "fine_tune_neighbors": "fine_tune_neighbours"}
    old["fine_tune_lr"] = "fine_tune_learning_rate"
    saved["config"] = {old.get(key, key): value for key, value in saved["config"].items()}
    assert "neighbours" in saved["config"] and "neighbors" not in saved["config"]
    path.write_text(json.dumps(saved))
    loaded = TextLearner.load(tmp_path / "text")
    assert (loaded.neighbors, loaded.fine_tune_neighbors, loaded.fine_tune_lr) == (7, 9, 4e-3)
    assert loaded.get_config() == learner.get_config()
    users = np.arange(structured_graph.num_users)
    torch.testing.assert_close(loaded.score(users), learner.score(users))


def test_missing_encoder_directory_is_reported(structured_graph, tmp_path):
    import shutil

    fine_tuned(structured_graph).save(tmp_path / "text")
    shutil.rmtree(tmp_path / "text" / "encoder")
    with pytest.raises(FileNotFoundError, match="fine-tuned"):
        TextLearner.load(tmp_path / "text")


def test_embeddings_follow_the_template(structured_graph):
    learner = fitted(structured_graph, template="{genre}")
    vectors = learner.item_embeddings()
    # Items of one genre share their whole text, hence their vector.
    np.testing.assert_allclose(vectors[0], vectors[4], atol=1e-6)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)
    assert item_texts(structured_graph, "{genre}")[0] == "g0"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"profile": "max"}, "profile must be one of"),
        ({"neighbors": 0}, "neighbors must be an integer >= 1"),
        ({"fine_tune_lr": -1.0}, "fine_tune_lr must be a finite number > 0"),
        ({"template": "{0}"}, "positional"),
    ],
)
def test_bad_hyper_parameters(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_learner(0, **overrides)


def test_scores_live_on_the_learner_device(structured_graph):
    learner = TestTextLearnerKnn().fitted(structured_graph)
    scores = learner.score(np.array([0, 1]))
    assert scores.device == torch.device(learner.device)
    with pytest.raises(ValueError, match="users holds indices outside"):
        learner.score(np.array([structured_graph.num_users]))


def test_text_neighbors_are_saved_not_found_again_on_load(structured_graph, tmp_path, monkeypatch):
    """Finding the neighbors compares every item with every other: a model loaded for serving reads them."""
    from safetensors.numpy import load_file, save_file

    import training.text.learner as learner_module

    learner = fitted(structured_graph)
    learner.save(tmp_path / "text")
    found = []
    real = learner_module.text_neighbors
    monkeypatch.setattr(learner_module, "text_neighbors", lambda *a, **k: found.append(1) or real(*a, **k))
    loaded = TextLearner.load(tmp_path / "text")
    assert not found
    assert (loaded.knn_ != learner.knn_).nnz == 0
    users = np.arange(structured_graph.num_users)
    torch.testing.assert_close(loaded.score(users), learner.score(users))
    # A learner saved before the neighbors were in its state finds them again, the same ones.
    state = load_file(str(tmp_path / "text" / "state.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("knn_")}, str(tmp_path / "text" / "state.safetensors"))
    old = TextLearner.load(tmp_path / "text")
    assert found == [1] and (old.knn_ != learner.knn_).nnz == 0
