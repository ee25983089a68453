"""Prediction and token attributions from a symptom-text bundle.

The explanation says which words pushed the decision: integrated gradients (Sundararajan et
al., ICML 2017; Captum's ``LayerIntegratedGradients`` on the token embeddings, from a baseline
where every word is ``[PAD]``) for the Transformer, summed over a word's WordPiece tokens; and,
for the TF-IDF model, the exact split of its linear score over words (which is what integrated
gradients gives for a linear model from the empty text).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from meddx.data.text import clean_text
from meddx.decision.bundle import Bundle
from meddx.errors import BundleError, DataError, InputFileError
from meddx.learn.tasks.tabular import calibrated_probs
from meddx.learn.tasks.text import (
    TASK_NAME,
    TFIDF_FILE,
    TFIDF_PREFIX,
    TOKENIZER_FILE,
    TextEncoderClassifier,
    TfidfModel,
    configure_tokenizer,
    encode_texts,
    transformer_scores,
)

IG_STEPS = 32


class TextPredictor:
    """Predictor for ``text-classification`` bundles.

    Args:
        metadata: bundle metadata.
        state_dict: encoder weights and the TF-IDF regression (``tfidf.*``).
        tokenizer_json: the trained tokenizer (``tokenizers`` JSON).
        tfidf_json: TF-IDF vocabulary and IDF weights.
        source: where the model came from, for messages.
        model: which model decides (default: the bundle's chosen one).
    """

    def __init__(self, metadata: dict[str, Any], state_dict: Mapping[str, torch.Tensor],
                 tokenizer_json: str, tfidf_json: str, source: str = "bundle",
                 model: str | None = None):
        from tokenizers import Tokenizer

        if metadata.get("task") != TASK_NAME:
            raise BundleError(f"{source}: task {metadata.get('task')!r} is not {TASK_NAME!r}")
        self.metadata = metadata
        self.name = metadata.get("name", source)
        self.class_names = list(metadata["class_names"])
        self.threshold = None
        self.model_name = model or metadata["chosen_model"]
        self.calibration = metadata["calibration"]
        try:
            self.tokenizer = configure_tokenizer(Tokenizer.from_str(tokenizer_json),
                                                 metadata["network"]["max_length"])
        except Exception as error:  # tokenizers raises plain Exceptions for bad JSON
            raise BundleError(f"{source}: cannot read the tokenizer ({error})") from error
        encoder_state = {k: v for k, v in state_dict.items() if not k.startswith(TFIDF_PREFIX)}
        self.model = TextEncoderClassifier(metadata["network"])
        try:
            self.model.load_state_dict(encoder_state)
        except RuntimeError as error:
            raise BundleError(f"{source}: weights do not fit the network ({error})") from error
        self.model.eval()
        self.tfidf = TfidfModel.from_saved(tfidf_json, dict(state_dict))

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: torch.device | None = None,
                    model: str | None = None) -> TextPredictor:
        files = {}
        for name in (TOKENIZER_FILE, TFIDF_FILE):
            path = bundle.path / name
            if not path.exists():
                raise BundleError(f"{bundle.path}: the bundle has no {name}")
            files[name] = path.read_text(encoding="utf-8")
        return cls(bundle.metadata, bundle.state_dict(), files[TOKENIZER_FILE],
                   files[TFIDF_FILE], source=str(bundle.path), model=model)

    # --- probabilities ----------------------------------------------------------------------

    def _probs(self, texts: Sequence[str], name: str) -> np.ndarray:
        if name == "ensemble":
            return (self._probs(texts, "transformer") + self._probs(texts, "tfidf")) / 2
        scores = (transformer_scores(self.model, self.tokenizer, texts) if name == "transformer"
                  else self.tfidf.scores(texts))
        return calibrated_probs(scores, self.calibration[name])

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        cleaned = [clean_text(t, f"text {i + 1}") for i, t in enumerate(texts)]
        return self._probs(cleaned, self.model_name)

    def predict_split(self, split) -> np.ndarray:
        """Probabilities for every text of a split (the evaluation path's entry)."""
        return self.predict_proba(split.texts)

    def predict_split_by_model(self, split) -> dict[str, tuple[np.ndarray, None]]:
        """Probabilities of every model in the bundle (no thresholds: arg-max decisions)."""
        return {name: (self._probs(split.texts, name), None) for name in self.metadata["models"]}

    # --- explanations -----------------------------------------------------------------------

    def integrated_gradients(self, text: str, target: int) -> dict[str, Any]:
        """Word attributions of the Transformer's logit for ``target`` (Captum IG)."""
        from captum.attr import LayerIntegratedGradients

        ids, mask = encode_texts(self.tokenizer, [text])
        encoding = self.tokenizer.encode(text)
        special = torch.tensor([t in ("[CLS]", "[SEP]") for t in encoding.tokens])
        pad_id = self.tokenizer.token_to_id("[PAD]")
        baseline = torch.where(special[None, :ids.shape[1]], ids, torch.full_like(ids, pad_id))

        def forward(input_ids, attention_mask):
            return self.model(input_ids, attention_mask)

        ig = LayerIntegratedGradients(forward, self.model.encoder.embeddings.word_embeddings)
        attributions, delta = ig.attribute(ids, baselines=baseline, target=target,
                                           additional_forward_args=(mask,), n_steps=IG_STEPS,
                                           return_convergence_delta=True)
        per_token = attributions.sum(-1)[0].detach().numpy()
        words: dict[int, list] = {}
        for position, word_id in enumerate(encoding.word_ids):
            if word_id is None:
                continue
            start, end = encoding.offsets[position]
            entry = words.setdefault(word_id, [start, end, 0.0])
            entry[1] = max(entry[1], end)
            entry[2] += float(per_token[position])
        tokens = [{"token": tok, "attribution": float(a)}
                  for tok, a, wid in zip(encoding.tokens, per_token, encoding.word_ids,
                                         strict=True) if wid is not None]
        return {"method": f"integrated gradients (Captum, {IG_STEPS} steps, [PAD] baseline) "
                          "on the Transformer's logit",
                "words": [{"word": text[s:e], "attribution": a}
                          for s, e, a in words.values()],
                "tokens": tokens,
                "convergence_delta": float(delta.abs().max())}

    def linear_attributions(self, text: str, target: int) -> dict[str, Any]:
        return {"method": "exact split of the TF-IDF regression score over words (integrated "
                          "gradients from the empty text)",
                "words": [{"word": w, "attribution": a}
                          for w, a in self.tfidf.word_contributions(text, target)]}

    # --- prediction -------------------------------------------------------------------------

    def predict_texts(self, texts: Sequence[str], explain_dir: Path | None = None,
                      stem: str = "text") -> list[dict[str, Any]]:
        """Class probabilities, top-3, decision and word attributions for each text."""
        if not texts:
            raise DataError("no text to predict")
        start = time.perf_counter()
        cleaned = [clean_text(t, f"text {i + 1}") for i, t in enumerate(texts)]
        probs = self._probs(cleaned, self.model_name)
        results = []
        for i, text in enumerate(cleaned):
            p = probs[i]
            decision = int(p.argmax())
            explanation: dict[str, Any] = {}
            if self.model_name in ("transformer", "ensemble"):
                explanation["transformer"] = self.integrated_gradients(text, decision)
            if self.model_name in ("tfidf", "ensemble"):
                explanation["tfidf"] = self.linear_attributions(text, decision)
            unknown = sum(t == "[UNK]" for t in self.tokenizer.encode(text).tokens)
            result: dict[str, Any] = {
                "text": text,
                "probabilities": {n: float(v) for n, v in zip(self.class_names, p, strict=True)},
                "top_3": [{"class": self.class_names[k], "probability": float(p[k])}
                          for k in np.argsort(-p)[:3]],
                "decision": self.class_names[decision],
                "uncertainty": float(-(np.clip(p, 1e-12, 1) * np.log(np.clip(p, 1e-12, 1))).sum()
                                     / math.log(len(p))),
                "model": self.name,
                "model_kind": self.model_name,
                "explanation": explanation,
                "warnings": ([f"{unknown} word piece(s) are unknown to the model (another "
                              "language or script?); the prediction is unreliable"]
                             if unknown else []),
            }
            if explain_dir is not None:
                key = "transformer" if "transformer" in explanation else "tfidf"
                path = Path(explain_dir) / f"{stem}_{i:03d}_attributions.png"
                result["explanation"]["plot"] = str(plot_word_attributions(
                    explanation[key]["words"], path,
                    f"{self.class_names[decision]} (p={p[decision]:.2f})"))
            results.append(result)
        elapsed = (time.perf_counter() - start) * 1000 / len(results)
        for result in results:
            result["latency_ms"] = round(elapsed, 2)
        return results

    def predict_file(self, path: str | Path, explain_to: Path | None = None) -> dict[str, Any]:
        """Predict the text in a plain-text file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputFileError(path, f"cannot read the text ({error})") from error
        explain_dir = Path(explain_to).parent if explain_to is not None else None
        result = self.predict_texts([clean_text(text, str(path))], explain_dir, path.stem)[0]
        return {"file": str(path), **result}


def plot_word_attributions(words: Sequence[Mapping[str, Any]], path: Path, title: str,
                           top: int = 20) -> Path:
    """Bar plot of the words with the largest attributions (red: for the decision)."""
    from meddx.figures import new_figure, save_figure

    ranked = sorted(words, key=lambda w: -abs(w["attribution"]))[:top][::-1]
    figure = new_figure(6.5, 0.35 * len(ranked) + 1.4)
    axis = figure.add_subplot(1, 1, 1)
    values = [w["attribution"] for w in ranked]
    axis.barh(range(len(ranked)), values,
              color=["#c0392b" if v > 0 else "#2e86c1" for v in values])
    axis.set_yticks(range(len(ranked)), [w["word"] for w in ranked])
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel("attribution to the decided class")
    axis.set_title(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(figure, path)
