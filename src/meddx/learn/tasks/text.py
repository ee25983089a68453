"""Task recipe: diagnosis from a patient's description of symptoms (free text).

Two models on the same split, both reported:

* a small Transformer encoder trained from scratch: a WordPiece tokenizer trained on the training
  texts with Hugging Face ``tokenizers``, and a BERT-style encoder built from a ``transformers``
  ``BertConfig`` (random initialisation, no downloaded weights), mean-pooled into a linear head,
  trained by the one :class:`~meddx.learn.trainer.Trainer`. Training texts get random typos
  (character swaps, drops, doublings) so spelling mistakes at prediction time are familiar;
* a TF-IDF (character n-grams within words, robust to typos) + logistic regression baseline.

Both are calibrated by temperature scaling on validation; the bundle uses the one with the best
validation macro-F1 among the two and their average. Text in other languages or scripts never
crashes: unknown characters become ``[UNK]`` tokens / unseen n-grams.

Nothing is pickled: the encoder and the logistic regression are tensors in ``weights.pt``, the
tokenizer is its own JSON (``tokenizer.json``), the TF-IDF vocabulary and IDF weights are JSON
(``tfidf.json``).
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import sparse
from torch import nn
from torch.nn import functional

from meddx.data.text import TextDataset
from meddx.errors import ConfigError
from meddx.learn.evaluation.metrics import classification_metrics
from meddx.learn.tasks import FitOutput, check_splits, resolve_plan
from meddx.learn.tasks.tabular import calibrated_probs, fit_calibration, softmax
from meddx.learn.trainer import TrainConfig, Trainer

log = logging.getLogger(__name__)

TASK_NAME = "text-classification"
TOKENIZER_FILE = "tokenizer.json"
TFIDF_FILE = "tfidf.json"
TFIDF_PREFIX = "tfidf."
MODELS = ("transformer", "tfidf", "ensemble")
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


@dataclass
class TextPlan:
    """Model options (``meddx train --plan``).

    Attributes:
        model: ``auto`` (best validation macro-F1), ``transformer``, ``tfidf`` or ``ensemble``.
        vocab_size: WordPiece vocabulary size.
        max_length: tokens per text (longer texts are truncated).
        hidden_size, layers, heads, intermediate_size, dropout: encoder shape.
        batch_size: training batch size.
        typo_rate: share of words given a random typo during training.
        tfidf: TF-IDF options (``ngram_range``, ``max_features``) and ``C`` of the regression.
    """

    model: str = "auto"
    vocab_size: int = 4000
    max_length: int = 96
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 256
    dropout: float = 0.1
    batch_size: int = 32
    typo_rate: float = 0.1
    tfidf: dict[str, Any] = field(default_factory=lambda: {
        "ngram_range": [2, 5], "max_features": 40000, "C": 10.0})

    def __post_init__(self) -> None:
        if self.model not in ("auto", *MODELS):
            raise ConfigError(f"plan model must be auto, transformer, tfidf or ensemble, not "
                              f"{self.model!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextPlan:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown plan option(s) {unknown} for text (known: "
                              f"{sorted(cls.__dataclass_fields__)})")
        return cls(**data)


# --------------------------------------------------------------------------------------------
# Tokenizer and encoder
# --------------------------------------------------------------------------------------------


def train_tokenizer(texts: Sequence[str], vocab_size: int, max_length: int):
    """A WordPiece tokenizer (lower-cased, accents stripped) trained on ``texts``."""
    import string

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True,
                                                      clean_text=True, handle_chinese_chars=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=1,
        # Every ASCII letter and digit, so a typo never makes a whole word unknown.
        initial_alphabet=list(string.ascii_lowercase + string.digits))
    tokenizer.train_from_iterator(list(texts), trainer)
    return configure_tokenizer(tokenizer, max_length)


def configure_tokenizer(tokenizer, max_length: int):
    from tokenizers import processors

    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    return tokenizer


def encode_texts(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (N, L) int64."""
    encodings = tokenizer.encode_batch(list(texts))
    ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
    return ids, mask


class TextEncoderClassifier(nn.Module):
    """BERT-style encoder (``transformers.BertModel`` from a config) + mean pooling + head."""

    def __init__(self, network: dict[str, Any]):
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=network["vocab_size"], hidden_size=network["hidden_size"],
            num_hidden_layers=network["layers"], num_attention_heads=network["heads"],
            intermediate_size=network["intermediate_size"],
            hidden_dropout_prob=network["dropout"], attention_probs_dropout_prob=network["dropout"],
            max_position_embeddings=network["max_length"], pad_token_id=0)
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(network["dropout"])
        self.head = nn.Linear(network["hidden_size"], network["num_classes"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask
                              ).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.head(self.dropout(pooled))


def transformer_scores(model: nn.Module, tokenizer, texts: Sequence[str],
                       batch_size: int = 128) -> np.ndarray:
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            ids, mask = encode_texts(tokenizer, texts[start:start + batch_size])
            out.append(model(ids.to(device), mask.to(device)).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def add_typos(text: str, rng: random.Random, rate: float) -> str:
    """Random character swaps, drops and doublings in ``rate`` of the words (augmentation)."""
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) < 4 or rng.random() >= rate:
            continue
        j = rng.randrange(1, len(word) - 1)
        kind = rng.randrange(3)
        if kind == 0:
            word = word[:j] + word[j + 1] + word[j] + word[j + 2:]
        elif kind == 1:
            word = word[:j] + word[j + 1:]
        else:
            word = word[:j] + word[j] + word[j:]
        words[i] = word
    return " ".join(words)


class TextTask:
    """The trainer's view of the Transformer on symptom texts (see ``TrainableTask``)."""

    selection_metric = "macro_f1"

    def __init__(self, network: dict[str, Any], plan: TextPlan, tokenizer,
                 train_texts: list[str], train_y: np.ndarray, val_texts: list[str],
                 val_y: np.ndarray):
        self.network, self.plan, self.tokenizer = network, plan, tokenizer
        self.train_texts, self.train_y = train_texts, torch.as_tensor(train_y, dtype=torch.long)
        self.val_texts, self.val_y = val_texts, np.asarray(val_y)

    def build_model(self) -> nn.Module:
        return TextEncoderClassifier(self.network)

    def num_train_batches(self) -> int:
        return -(-len(self.train_texts) // self.plan.batch_size)

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterator[tuple]:
        order = torch.randperm(len(self.train_texts), generator=generator)
        rng = random.Random(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        for start in range(0, len(order), self.plan.batch_size):
            index = order[start:start + self.plan.batch_size].tolist()
            texts = [add_typos(self.train_texts[i], rng, self.plan.typo_rate) for i in index]
            ids, mask = encode_texts(self.tokenizer, texts)
            yield ids, mask, self.train_y[index]

    def training_loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:
        ids, mask, targets = batch
        device = next(model.parameters()).device
        logits = model(ids.to(device), mask.to(device))
        return functional.cross_entropy(logits.float(), targets.to(device), label_smoothing=0.05)

    def validate(self, model: nn.Module) -> dict[str, float]:
        probs = softmax(transformer_scores(model, self.tokenizer, self.val_texts))
        return quick_text_metrics(self.val_y, probs)


def quick_text_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Macro-F1, accuracy and top-3 accuracy for model selection."""
    from sklearn.metrics import f1_score

    pred = probs.argmax(1)
    top3 = np.argsort(-probs, axis=1)[:, :3]
    return {"macro_f1": float(f1_score(labels, pred, average="macro")),
            "accuracy": float((pred == labels).mean()),
            "top_3_accuracy": float((top3 == labels[:, None]).any(1).mean())}


# --------------------------------------------------------------------------------------------
# TF-IDF + logistic regression (stored as JSON + tensors)
# --------------------------------------------------------------------------------------------


class TfidfModel:
    """Character n-gram TF-IDF (sublinear tf, l2 norm) + linear scores, without pickle.

    Fitted with scikit-learn, then kept as plain data: ``vocabulary`` (term -> column), ``idf``,
    ``coef`` (K, V) and ``intercept`` (K,). :meth:`word_contributions` splits a text's score
    exactly into per-word parts.
    """

    def __init__(self, options: dict[str, Any], vocabulary: dict[str, int], idf: np.ndarray,
                 coef: np.ndarray, intercept: np.ndarray):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.options = options
        self.vocabulary, self.idf = vocabulary, np.asarray(idf, dtype=np.float64)
        self.coef, self.intercept = np.asarray(coef, np.float64), np.asarray(intercept,
                                                                              np.float64)
        self._vectorizer = TfidfVectorizer(**self._vectorizer_options(options))
        self._analyzer = self._vectorizer.build_analyzer()
        self._preprocess = self._vectorizer.build_preprocessor()

    @staticmethod
    def _vectorizer_options(options: dict[str, Any]) -> dict[str, Any]:
        return {"analyzer": "char_wb", "ngram_range": tuple(options["ngram_range"]),
                "lowercase": True, "strip_accents": "unicode", "sublinear_tf": True,
                "max_features": options.get("max_features")}

    @classmethod
    def fit(cls, texts: Sequence[str], labels: np.ndarray, options: dict[str, Any],
            seed: int = 0) -> TfidfModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        vectorizer = TfidfVectorizer(**cls._vectorizer_options(options))
        features = vectorizer.fit_transform(texts)
        # One BLAS thread: on small sparse problems more threads only contend (3x slower
        # measured on a shared 2-core machine).
        with threadpool_limits(limits=1):
            regression = LogisticRegression(C=float(options.get("C", 10.0)), max_iter=3000,
                                            tol=1e-3, random_state=seed).fit(features, labels)
        coef, intercept = regression.coef_, regression.intercept_
        if coef.shape[0] == 1:  # binary: scikit-learn keeps one row; use [-w, w] / 2
            coef = np.concatenate([-coef, coef]) / 2
            intercept = np.concatenate([-intercept, intercept]) / 2
        vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
        return cls(dict(options), vocabulary, vectorizer.idf_, coef, intercept)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            counts = Counter(t for t in self._analyzer(text) if t in self.vocabulary)
            if not counts:
                continue
            idx = np.array([self.vocabulary[t] for t in counts])
            weight = (1.0 + np.log(np.array(list(counts.values()), dtype=np.float64))) \
                * self.idf[idx]
            weight /= np.linalg.norm(weight)
            rows += [r] * len(idx)
            cols += idx.tolist()
            vals += weight.tolist()
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(texts), len(self.idf)))

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.transform(texts) @ self.coef.T) + self.intercept

    def word_contributions(self, text: str, target: int) -> list[tuple[str, float]]:
        """Exact split of ``score[target] - intercept[target]`` over the words of ``text``.

        A char_wb n-gram belongs to one word; the weight of a term occurring ``c`` times is
        shared equally by its occurrences. For a linear model this equals integrated gradients
        from the empty text.
        """
        words = self._preprocess(text).split()
        grams = [[g for g in self._analyzer(w) if g in self.vocabulary] for w in words]
        counts = Counter(g for gs in grams for g in gs)
        if not counts:
            return [(w, 0.0) for w in words]
        idx = {g: self.vocabulary[g] for g in counts}
        weight = {g: (1.0 + math.log(c)) * self.idf[idx[g]] for g, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in weight.values()))
        return [(w, float(sum(self.coef[target, idx[g]] * weight[g] / (norm * counts[g])
                               for g in gs)))
                for w, gs in zip(words, grams, strict=True)]

    def to_json(self) -> str:
        terms = sorted(self.vocabulary, key=self.vocabulary.get)
        return json.dumps({"options": self.options, "terms": terms,
                           "idf": self.idf.tolist()})

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{TFIDF_PREFIX}coef": torch.from_numpy(self.coef.astype(np.float32)),
                f"{TFIDF_PREFIX}intercept": torch.from_numpy(self.intercept.astype(np.float32))}

    @classmethod
    def from_saved(cls, text: str, state: dict[str, torch.Tensor]) -> TfidfModel:
        data = json.loads(text)
        vocabulary = {t: i for i, t in enumerate(data["terms"])}
        return cls(data["options"], vocabulary, np.asarray(data["idf"]),
                   state[f"{TFIDF_PREFIX}coef"].double().numpy(),
                   state[f"{TFIDF_PREFIX}intercept"].double().numpy())


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------


def fit(dataset: TextDataset, work_dir: Path, config: TrainConfig,
        plan: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
        split_seed: int = 0) -> FitOutput:
    """Tokenizer + Transformer (one Trainer), TF-IDF + LR; calibrate and choose on validation."""
    from meddx.decision.text_predict import TextPredictor

    plan_obj = resolve_plan(work_dir, resume, lambda: TextPlan.from_dict(dict(plan or {})),
                            TextPlan.from_dict)
    class_names = list(dataset.class_names)
    train = dataset.split("train", seed=split_seed)
    val = dataset.split("val", seed=split_seed)
    check_splits(train, val, class_names, dataset.name)

    tokenizer = train_tokenizer(train.texts, plan_obj.vocab_size, plan_obj.max_length)
    network = {"arch": "bert-encoder", "vocab_size": tokenizer.get_vocab_size(),
               "hidden_size": plan_obj.hidden_size, "layers": plan_obj.layers,
               "heads": plan_obj.heads, "intermediate_size": plan_obj.intermediate_size,
               "dropout": plan_obj.dropout, "max_length": plan_obj.max_length,
               "num_classes": len(class_names)}
    task = TextTask(network, plan_obj, tokenizer, train.texts, train.labels, val.texts,
                    val.labels)
    result = Trainer(config, work_dir, progress=progress).fit(task, resume=resume)
    tfidf = TfidfModel.fit(train.texts, train.labels, plan_obj.tfidf, seed=config.seed)

    scores = {"transformer": transformer_scores(result.model, tokenizer, val.texts),
              "tfidf": tfidf.scores(val.texts)}
    calibration = {name: fit_calibration(s, val.labels) for name, s in scores.items()}
    probs = {name: calibrated_probs(s, calibration[name]) for name, s in scores.items()}
    probs["ensemble"] = (probs["transformer"] + probs["tfidf"]) / 2
    quick = {name: quick_text_metrics(val.labels, p) for name, p in probs.items()}
    chosen = plan_obj.model
    if chosen == "auto":
        chosen = max(MODELS, key=lambda m: (quick[m]["macro_f1"], -MODELS.index(m)))
    log.info("validation macro-F1: %s; chosen: %s",
             {k: v["macro_f1"] for k, v in quick.items()}, chosen)
    models = {name: {"val": classification_metrics(val.labels, probs[name], class_names,
                                                   n_bootstrap=200)} for name in MODELS}
    metadata: dict[str, Any] = {
        "task": TASK_NAME,
        "intended_use": (
            "Research and remote-consultation triage support only: ranks likely conditions from "
            "a patient's own description of symptoms, with the words that drove the ranking, "
            "for a clinician to review. Never a diagnosis; trained on a small English data set "
            "of 24 conditions and blind to every other condition."),
        "limitations": [
            "Only the trained conditions can be ranked; a patient with any other condition still "
            "gets one of them.",
            "Word attributions show what the model weighed, not medical reasoning.",
            "Text in other languages is accepted but the model has seen only English.",
        ],
        "class_names": class_names,
        "threshold": None,
        "plan": plan_obj.to_dict(),
        "plan_overrides": dict(plan or {}),
        "chosen_model": chosen,
        "network": network,
        "calibration": calibration,
        "models": models,
        "training": {"config": asdict(config), "best_epoch": result.best_epoch,
                     "best_val_macro_f1": result.best_score, "epochs_run": len(result.history),
                     "stop_reason": result.stop_reason, "elapsed_s": round(result.elapsed_s, 1),
                     "history": result.history},
        "metrics": {"val": models[chosen]["val"]},
    }
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    state.update(tfidf.state_dict())
    files = {TOKENIZER_FILE: tokenizer.to_str(), TFIDF_FILE: tfidf.to_json()}
    predictor = TextPredictor(metadata, state, files[TOKENIZER_FILE], files[TFIDF_FILE],
                              source=str(work_dir))
    return FitOutput(metadata, state, predictor, extra_files=files)
