"""Symptom text: reader, TF-IDF without pickle, tiny Transformer round trip, attributions."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from meddx.data.loading import load_dataset
from meddx.data.text import TextDataset, can_read_text_table, clean_text, load_text_dataset
from meddx.decision.predictors import load_model
from meddx.errors import DataError
from meddx.learn.pipeline import train_model
from meddx.learn.tasks.text import TfidfModel, add_typos
from meddx.learn.trainer import TrainConfig

TINY = {"vocab_size": 300, "hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64,
        "max_length": 48, "batch_size": 16}
FAST = TrainConfig(epochs=3, patience=0, amp="off", lr=3e-3)
SYMPTOMS = {
    "rash": ["my skin is itchy with a red rash", "red itchy patches on my skin and arms",
             "the rash on my skin keeps spreading and itching"],
    "flu": ["I have a fever and a sore throat", "high fever, cough and aching muscles",
            "fever with chills and a runny nose since yesterday"],
    "ulcer": ["burning pain in my stomach after meals", "stomach ache and nausea after eating",
              "a gnawing pain in the upper stomach at night"],
}


def write_texts(path, repeats=10, seed=0):
    rng = np.random.default_rng(seed)
    lines = [",label,text"]
    i = 0
    for label, texts in SYMPTOMS.items():
        for _ in range(repeats):
            text = rng.choice(texts) + rng.choice(["", " for a week", " and I feel tired"])
            lines.append(f'{i},{label},"{text}"')
            i += 1
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    data = load_text_dataset(write_texts(folder / "texts.csv"))
    return train_model(data, folder / "bundle", config=FAST, plan=TINY, progress=False)


def test_reader_and_registry(tmp_path):
    path = write_texts(tmp_path / "t.csv", repeats=4)
    assert can_read_text_table(path)
    data = load_dataset(path)
    assert isinstance(data, TextDataset)
    assert data.class_names == ["flu", "rash", "ulcer"]
    assert sum(data.split_sizes().values()) == 12
    with pytest.raises(DataError, match="empty"):
        clean_text("  \t ")
    empty = tmp_path / "e.csv"
    empty.write_text('label,text\nflu,"fever"\nrash," "\n')
    with pytest.raises(DataError, match="line 3: the text is empty"):
        load_text_dataset(empty)
    one = tmp_path / "one.csv"
    one.write_text('label,text\nflu,"fever"\nflu,"cough"\n')
    with pytest.raises(DataError, match="two classes"):
        load_text_dataset(one)


def test_tfidf_model_matches_scikit_learn_and_splits_scores_exactly():
    texts = [t for group in SYMPTOMS.values() for t in group]
    labels = np.repeat(np.arange(3), 3)
    options = {"ngram_range": [2, 4], "max_features": 5000, "C": 10.0}
    model = TfidfModel.fit(texts, labels, options)
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True,
                                strip_accents="unicode", max_features=5000).fit(texts)
    ours = model.transform(texts).toarray()
    theirs = reference.transform(texts).toarray()
    order = [reference.vocabulary_[t] for t in sorted(model.vocabulary, key=model.vocabulary.get)]
    np.testing.assert_allclose(ours, theirs[:, order], atol=1e-10)
    text = "itchy red rash, itchy skin"
    parts = model.word_contributions(text, 1)
    score = model.scores([text])[0, 1] - model.intercept[1]
    assert sum(a for _, a in parts) == pytest.approx(score, abs=1e-9)
    rebuilt = TfidfModel.from_saved(model.to_json(), model.state_dict())
    np.testing.assert_allclose(rebuilt.scores([text]), model.scores([text]), atol=1e-5)


def test_typo_augmentation_changes_some_words():
    import random

    text = "persistent headache with blurred vision and nausea"
    noisy = add_typos(text, random.Random(0), 1.0)
    assert noisy != text and len(noisy.split()) == len(text.split())


def test_text_bundle_round_trip(bundle, tmp_path):
    meta = bundle.metadata
    assert meta["task"] == "text-classification"
    assert set(meta["models"]) == {"transformer", "tfidf", "ensemble"}
    assert (bundle.path / "tokenizer.json").exists() and (bundle.path / "tfidf.json").exists()
    test = meta["metrics"]["test"]
    assert {"accuracy", "macro_f1", "auc", "top_k_accuracy"} <= set(test)
    predictor = load_model(bundle.path)
    texts = ["I have a high fever and a cough", "red itchy rash on my skin",
             "feevr and coughh, sore throt",  # typos
             "J'ai de la fièvre et je tousse",  # French
             "我发烧了，咳嗽",  # Chinese
             "🤒🤒"]
    results = predictor.predict_texts(texts, explain_dir=tmp_path)
    assert len(results) == len(texts)
    for result in results:
        assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-6)
        assert len(result["top_3"]) == 3
        assert result["explanation"]
        assert (tmp_path / f"text_{results.index(result):03d}_attributions.png").exists()
    assert any(r["warnings"] for r in results[3:])
    with pytest.raises(DataError, match="empty"):
        predictor.predict_texts([""])


def test_integrated_gradients_attribute_words(bundle):
    from meddx.decision.bundle import load_bundle
    from meddx.decision.text_predict import TextPredictor

    predictor = TextPredictor.from_bundle(load_bundle(bundle.path), model="transformer")
    text = "red itchy rash on my skin"
    explanation = predictor.integrated_gradients(text, 1)
    assert [w["word"] for w in explanation["words"]] == text.split()
    assert all(np.isfinite(w["attribution"]) for w in explanation["words"])
    # Completeness: attributions sum to logit(x) - logit(baseline), up to the IG error.
    assert explanation["convergence_delta"] < 0.5
