"""Prediction and per-patient explanation from a clinical-record bundle.

A :class:`TabularPredictor` applies the bundle's own schema and preprocessing to new records (a
JSON record, a CSV/TSV file of many, or a dataset split), so a bundle trained at one hospital
applies to another's export of the same columns without code.

Explanations are SHAP values (Lundberg & Lee, NeurIPS 2017) computed by the ``shap`` package's
permutation explainer on the *measurements* (one value per column, so a one-hot category or a
missing-value indicator is explained together with its measurement). The explained output is the
model's calibrated log-odds of the positive class (binary) or the calibrated log-probability of
the decided class (multi-class); ``base_value + sum(shap_values) == output`` holds exactly. The
background distribution is a set of k-means centroids of the training records stored in the
bundle, not the records themselves.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from meddx.data.tabular import TabularSchema, parse_frame, read_raw_table
from meddx.decision.bundle import Bundle
from meddx.errors import BundleError, DataError
from meddx.learn.boosting import booster_scores, load_booster
from meddx.learn.tasks.tabular import (
    LGBM_FILE,
    TASK_NAME,
    NumpyMLP,
    TabularPreprocessing,
    build_mlp,
    calibrated_log_odds,
    calibrated_probs,
    mlp_scores,
)

log = logging.getLogger(__name__)

KERNEL_SAMPLES = 512
"""Coalitions sampled per record by Kernel SHAP when there are too many to enumerate."""



def read_records(path: str | Path, schema: TabularSchema
                 ) -> tuple[list[str], list[list[str]], int]:
    """The records of a table to predict, read the way the bundle's schema names its columns.

    Returns:
        (column names, rows of string cells, file line number of the first row).

    Raises:
        InputFileError / DataError: unreadable file, no records, or no header and a number of
            columns the schema does not explain.
    """
    path = Path(path)
    _, rows = read_raw_table(path, False, schema.missing_values)
    # The bundle knows the column names: a first row naming most of them is a header.
    named = len(set(rows[0]) & set(schema.feature_names))
    header = rows[0] if named >= max(1, len(schema.feature_names) // 2) else None
    rows = rows[1:] if header is not None else rows
    first = 2 if header is not None else 1
    if header is None:
        order = schema.column_order or schema.feature_names
        if len(rows[0]) == len(order):
            header = list(order)
        elif len(rows[0]) == len(schema.feature_names):
            header = list(schema.feature_names)
        else:
            raise DataError(f"{path}: {len(rows[0])} columns and no header; the model "
                            f"expects the columns {order}")
    if not rows:
        raise DataError(f"{path}: the table has no records")
    return list(header), rows, first


def _decide(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    if probs.shape[1] == 2 and threshold is not None:
        return (probs[:, 1] >= threshold).astype(np.int64)
    return probs.argmax(axis=1)


class TabularPredictor:
    """Predictor for ``tabular-classification`` bundles.

    Args:
        metadata: bundle metadata (schema, preprocessing, network, calibration, chosen model).
        state_dict: MLP weights.
        lgbm_text: the LightGBM model in its text format.
        source: where the model came from, for messages.
        model: which model to use (default: the bundle's chosen one): mlp, lightgbm, ensemble.
    """

    def __init__(self, metadata: dict[str, Any], state_dict: Mapping[str, torch.Tensor],
                 lgbm_text: str, source: str = "bundle", model: str | None = None):

        if metadata.get("task") != TASK_NAME:
            raise BundleError(f"{source}: task {metadata.get('task')!r} is not {TASK_NAME!r}")
        self.metadata = metadata
        self.name = metadata.get("name", source)
        self.class_names = list(metadata["class_names"])
        self.threshold = metadata.get("threshold")
        self.schema = TabularSchema.from_dict(metadata["schema"], source)
        self.preprocessing = TabularPreprocessing.from_dict(metadata["preprocessing"])
        self.calibration = metadata["calibration"]
        self.model_name = model or metadata["chosen_model"]
        if model is not None and model != metadata["chosen_model"]:
            self.threshold = metadata["models"][model].get("threshold")
        self.mlp = build_mlp(metadata["network"])
        try:  # loading into the torch module checks the weights fit the network
            self.mlp.load_state_dict(dict(state_dict))
        except RuntimeError as error:
            raise BundleError(f"{source}: weights do not fit the network ({error})") from error
        self.mlp = NumpyMLP(self.mlp.state_dict())
        self.booster = load_booster(lgbm_text, source)
        self.background = np.asarray(metadata["explain"]["background"], dtype=np.float64)

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: torch.device | None = None,
                    model: str | None = None) -> TabularPredictor:
        path = bundle.path / LGBM_FILE
        if not path.exists():
            raise BundleError(f"{bundle.path}: the bundle has no {LGBM_FILE}")
        return cls(bundle.metadata, bundle.state_dict(), path.read_text(encoding="utf-8"),
                   source=str(bundle.path), model=model)

    # --- core -------------------------------------------------------------------------------

    def _model_probs(self, features: np.ndarray, name: str) -> np.ndarray:
        k = len(self.class_names)
        if name == "ensemble":
            return (self._model_probs(features, "mlp") + self._model_probs(features,
                                                                           "lightgbm")) / 2
        scores = (mlp_scores(self.mlp, features) if name == "mlp"
                  else booster_scores(self.booster, features, k))
        return calibrated_probs(scores, self.calibration[name])

    def probs_from_encoded(self, encoded: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, K) from encoded measurements."""
        return self._model_probs(self.preprocessing.expand(encoded), self.model_name)

    def _output(self, encoded: np.ndarray, target: int | None) -> np.ndarray:
        """The explained output: calibrated log-odds (binary) or log P(target) (multi-class)."""
        if self.model_name != "ensemble" and len(self.class_names) == 2:
            features = self.preprocessing.expand(encoded)
            scores = (mlp_scores(self.mlp, features) if self.model_name == "mlp"
                      else booster_scores(self.booster, features, 2))
            return calibrated_log_odds(scores, self.calibration[self.model_name])
        probs = np.clip(self.probs_from_encoded(encoded), 1e-12, 1.0)
        if len(self.class_names) == 2:
            return np.log(probs[:, 1]) - np.log(probs[:, 0])
        return np.log(probs[:, target])

    def predict_split(self, split) -> np.ndarray:
        """Probabilities for every record of a split (the evaluation path's entry)."""
        encoded, warnings = self.preprocessing.encode(split.features, split.sources)
        noted = sum(bool(w) for w in warnings)
        if noted:
            log.warning("%d of %d records had values outside the training range or unseen "
                        "categories (first: %s)", noted, len(warnings),
                        next(w for w in warnings if w)[0])
        return self.probs_from_encoded(encoded)

    def predict_split_by_model(self, split) -> dict[str, tuple[np.ndarray, float | None]]:
        """(probabilities, validation-chosen threshold) of every model in the bundle."""
        encoded, _ = self.preprocessing.encode(split.features, split.sources)
        features = self.preprocessing.expand(encoded)
        return {name: (self._model_probs(features, name),
                       self.metadata["models"][name].get("threshold"))
                for name in self.metadata["models"]}

    def explain(self, encoded: np.ndarray, target: int | None = None,
                ) -> tuple[np.ndarray, float, np.ndarray]:
        """SHAP values (N, C) of encoded records, the base value and the explained outputs.

        Kernel SHAP (``shap.KernelExplainer``): with up to 9 measurements every coalition is
        evaluated (exact Shapley values); beyond, :data:`KERNEL_SAMPLES` sampled coalitions
        (the smallest and largest coalitions enumerated first). The efficiency constraint makes
        ``base + sum(values) == output`` exact either way.
        """
        import shap

        def f(x: np.ndarray) -> np.ndarray:
            return self._output(np.asarray(x, dtype=np.float64), target)

        explainer = shap.KernelExplainer(f, self.background, silent=True)
        samples = min(2 ** encoded.shape[1] - 2, KERNEL_SAMPLES)
        values = explainer.shap_values(encoded, nsamples=max(samples, 1), silent=True)
        values = np.asarray(values, dtype=np.float64).reshape(encoded.shape)
        return values, float(np.squeeze(explainer.expected_value)), f(encoded)

    # --- records ----------------------------------------------------------------------------

    def _predict_frame(self, frame: pd.DataFrame, sources: Sequence[str],
                       warnings: Sequence[str], explain_dir: Path | None,
                       stem: str) -> list[dict[str, Any]]:
        start = time.perf_counter()
        encoded, row_warnings = self.preprocessing.encode(frame, sources)
        probs = self.probs_from_encoded(encoded)
        decisions = _decide(probs, self.threshold)
        results = []
        for i in range(len(frame)):
            target = None if len(self.class_names) == 2 else int(decisions[i])
            values, base, output = self.explain(encoded[i:i + 1], target)
            described = self.preprocessing.describe(encoded[i])
            contributions = sorted(
                ({"feature": name, "value": shown, "shap": float(v)}
                 for name, shown, v in zip(self.preprocessing.names, described, values[0],
                                           strict=True)),
                key=lambda item: -abs(item["shap"]))
            result: dict[str, Any] = {
                "record": sources[i],
                "probabilities": {n: float(p) for n, p in zip(self.class_names, probs[i],
                                                              strict=True)},
                "decision": self.class_names[int(decisions[i])],
                "uncertainty": float(_entropy(probs[i])),
                "model": self.name,
                "model_kind": self.model_name,
                "explanation": {
                    "method": "SHAP (Kernel SHAP, shap package)",
                    "output": ("calibrated log-odds of " + self.class_names[1]
                               if len(self.class_names) == 2
                               else "log-probability of " + self.class_names[int(decisions[i])]),
                    "base_value": base, "output_value": float(output[0]),
                    "contributions": contributions},
                "warnings": [*warnings, *row_warnings[i]],
            }
            if self.threshold is not None:
                result["threshold"] = self.threshold
            if explain_dir is not None:
                path = Path(explain_dir) / f"{stem}_{i:03d}_shap.png"
                result["explanation"]["plot"] = str(plot_contributions(
                    contributions, base, float(output[0]), path,
                    f"{sources[i]}: {result['decision']} "
                    f"(p={probs[i][int(decisions[i])]:.2f})"))
            results.append(result)
        elapsed = (time.perf_counter() - start) * 1000
        for result in results:
            result["latency_ms"] = round(elapsed / max(len(results), 1), 2)
        return results

    def predict_records(self, records: Sequence[Mapping[str, Any]],
                        explain_dir: Path | None = None) -> list[dict[str, Any]]:
        """Predict JSON records (``{"Glucose": 148, ...}``; null or "" = not measured)."""
        if not records:
            raise DataError("no record to predict")
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise DataError(f"record {i + 1}: expected a JSON object of column: value")
        header = list(dict.fromkeys(k for r in records for k in r))
        rows = [[_cell(r.get(name)) for name in header] for r in records]
        sources = [f"record {i + 1}" for i in range(len(records))]
        frame, _, warnings = parse_frame(header, rows, self.schema, "record",
                                         require_target=False)
        return self._predict_frame(frame, sources, warnings, explain_dir, "record")

    def predict_table(self, path: str | Path, explain_dir: Path | None = None
                      ) -> list[dict[str, Any]]:
        """Predict every row of a CSV/TSV file read with the bundle's schema."""
        path = Path(path)
        header, rows, first = read_records(path, self.schema)
        frame, _, warnings = parse_frame(header, rows, self.schema, str(path), first,
                                         require_target=False)
        sources = [f"{path.name}:{i + first}" for i in range(len(rows))]
        return self._predict_frame(frame, sources, warnings, explain_dir, path.stem)

    def predict_file(self, path: str | Path, explain_to: Path | None = None) -> dict[str, Any]:
        """Predict a table file (the generic ``predict FILES`` entry)."""
        explain_dir = Path(explain_to).parent if explain_to is not None else None
        return {"file": str(path), "predictions": self.predict_table(path, explain_dir)}

    # --- report -----------------------------------------------------------------------------

    def report_extras(self, report_dir: Path, split, max_cases: int = 50) -> dict[str, Any]:
        """Global importance (mean |SHAP| per measurement) over a split: PNG + JSON."""
        rng = np.random.default_rng(0)
        n = len(split)
        index = np.sort(rng.choice(n, size=min(n, max_cases), replace=False))
        encoded, _ = self.preprocessing.encode(split.features.iloc[index],
                                               [split.sources[i] for i in index])
        if len(self.class_names) == 2:
            values, _, _ = self.explain(encoded)
        else:
            decisions = self.probs_from_encoded(encoded).argmax(1)
            values = np.concatenate([self.explain(encoded[i:i + 1], int(decisions[i]))[0]
                                     for i in range(len(encoded))])
        importance = np.abs(values).mean(axis=0)
        names = self.preprocessing.names
        order = np.argsort(-importance)
        data = {"method": "mean |SHAP| of the calibrated log-odds", "cases": int(len(index)),
                "importance": {names[i]: float(importance[i]) for i in order}}
        plot_global_importance(data["importance"], Path(report_dir) / "feature_importance.png",
                               f"{self.name}: which measurements drive the predictions")
        from meddx.fileio import write_json

        write_json(data, Path(report_dir) / "feature_importance.json")
        return data


def _entropy(p: np.ndarray) -> float:
    clipped = np.clip(p, 1e-12, 1)
    return float(-(clipped * np.log(clipped)).sum() / math.log(len(p)))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(value)
    return str(value)


def plot_contributions(contributions: Sequence[Mapping[str, Any]], base: float, output: float,
                       path: Path, title: str, top: int = 15) -> Path:
    """Horizontal bar plot of one patient's SHAP values (red raises, blue lowers the risk)."""
    from meddx.figures import new_figure, save_figure

    shown = list(contributions)[:top][::-1]
    figure = new_figure(7.0, 0.45 * len(shown) + 1.6)
    axis = figure.add_subplot(1, 1, 1)
    values = [c["shap"] for c in shown]
    axis.barh(range(len(shown)), values,
              color=["#c0392b" if v > 0 else "#2e86c1" for v in values])
    axis.set_yticks(range(len(shown)), [f"{c['feature']} = {c['value']}" for c in shown])
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel(f"SHAP value (log-odds); base {base:+.2f} -> output {output:+.2f}")
    axis.set_title(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(figure, path)


def plot_global_importance(importance: Mapping[str, float], path: Path, title: str) -> Path:
    """Bar plot of mean |SHAP| per measurement."""
    from meddx.figures import new_figure, save_figure

    items = list(importance.items())[:20][::-1]
    figure = new_figure(7.0, 0.4 * len(items) + 1.4)
    axis = figure.add_subplot(1, 1, 1)
    axis.barh(range(len(items)), [v for _, v in items], color="#7d3c98")
    axis.set_yticks(range(len(items)), [k for k, _ in items])
    axis.set_xlabel("mean |SHAP value| (log-odds)")
    axis.set_title(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(figure, path)
