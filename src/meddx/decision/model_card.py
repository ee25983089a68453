"""Human-readable model cards (after Mitchell et al., "Model Cards for Model Reporting", 2019)."""

from __future__ import annotations

from typing import Any

CARD_METRICS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "ece",
                "dice_mean", "hd95_mean", "nsd_mean")


def _format_metric(metrics: dict[str, Any], key: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "n/a"
    interval = (metrics.get("ci") or {}).get(key)
    if interval and None not in interval:
        return f"{value:.3f} (95% CI {interval[0]:.3f}-{interval[1]:.3f})"
    return f"{value:.3f}"


def metrics_table(metrics: dict[str, Any], keys: tuple[str, ...] = CARD_METRICS) -> str:
    rows = [f"| {key} | {_format_metric(metrics, key)} |" for key in keys if key in metrics]
    return "\n".join(["| metric | value |", "|---|---|", *rows])


ENSEMBLE_FIGURES = ("auc", "accuracy", "macro_f1", "loss", "neg_log_loss", "dice")


def ensemble_section(ensemble: dict[str, Any]) -> list[str]:
    """Model-card lines of a seed ensemble: each member's validation figures and the mean's."""
    shown = [key for key in ENSEMBLE_FIGURES if key in ensemble.get("val", {})]

    def cells(values: dict[str, Any]) -> str:
        return " | ".join("n/a" if values.get(key) is None else f"{values[key]:.4f}"
                          for key in shown)

    lines = ["", "## Ensemble",
             f"- {ensemble['members']} networks trained with different seeds on the same plan "
             f"and splits; prediction is the {ensemble.get('combine', 'mean of the members')}. "
             "Explanations average the members' maps.",
             "",
             "| model | seed | best epoch | minutes | " + " | ".join(
                 f"val {key}" for key in shown) + " |",
             "|---|---|---|---|" + "---|" * len(shown)]
    for row in ensemble.get("member_results", []):
        lines.append(f"| member {row['member']} | {row['seed']} | {row['best_epoch']} | "
                     f"{row['elapsed_s'] / 60:.1f} | {cells(row['val'])} |")
    lines.append(f"| **ensemble** | | | | {cells(ensemble['val'])} |")
    return lines


def _training_summary(training: dict[str, Any]) -> str:
    """How long the model trained, in its own units: epochs, boosting rounds or one fit."""
    minutes = f"{training.get('elapsed_s', 0) / 60:.1f} min"
    if "best_iteration" in training:
        return (f"{training['best_iteration']} boosting rounds, early-stopped after "
                f"{training.get('epochs_run', '?')}, {minutes}")
    if training.get("stop_reason") == "single fit":
        return f"one fit, {training.get('elapsed_s', 0):.1f} s"
    return (f"{training.get('epochs_run', '?')} epochs, best epoch "
            f"{training.get('best_epoch', '?')}, {minutes}")


def _fit_on_lines(training: dict[str, Any]) -> list[str]:
    """What the final model was fitted on, when the validation split joined the training."""
    if training.get("fit_on") != "train+val":
        return []
    both = f"Fitted on the train and val splits together ({training.get('train_examples', '?')}"
    selection = training.get("selection_fit")
    if not selection:
        return [f"- {both} examples): this model selects nothing on validation (fixed epochs "
                "or one fit), so none is held out; only a test split or an external set "
                "estimates it"]
    chosen = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in
                       (("epochs", selection.get("epochs")),
                        ("boosting_rounds", selection.get("boosting_rounds")))
                       if value is not None)
    val = selection.get("val", {})
    return [f"- {both} examples), refitted with what a first fit on the train split alone "
            f"({selection.get('train_examples', '?')} examples) chose on the val split: "
            f"{chosen}. That first fit's validation figures (n = {val.get('n', '?')}): "
            f"accuracy {val.get('accuracy', float('nan')):.3f}, macro-F1 "
            f"{val.get('macro_f1', float('nan')):.3f}; only a test split or an external set "
            "estimates the refitted model"]


def render_model_card(metadata: dict[str, Any]) -> str:
    """Markdown model card from a bundle's metadata."""
    provenance = metadata.get("provenance", {})
    sizes = provenance.get("split_sizes", {})
    metrics = metadata.get("metrics", {})
    classes = ", ".join(metadata.get("class_names", []))
    lines = [
        f"# Model card: {metadata.get('name', 'meddx model')}",
        "",
        "## Model",
        f"- Task: {metadata['task']}; classes: {classes}",
        f"- Model: {metadata.get('network', {}).get('arch', 'n/a')}, trained from scratch "
        f"({_training_summary(metadata.get('training', {}))})",
    ]
    if metadata.get("post_processing"):
        lines.append(f"- Post-processing: {metadata['post_processing']}")
    if metadata.get("threshold") is not None:
        lines.append(f"- Decision threshold on P({metadata['class_names'][-1]}): "
                     f"{metadata['threshold']:.3f}, chosen on the validation split "
                     f"({metadata.get('threshold_method', 'youden')})")
    lines += [
        "",
        "## Intended use",
        metadata.get("intended_use") or (
            "Research and decision support only: a second reader beside a qualified clinician, "
            "never a replacement. Not a certified medical device."),
        "",
        "## Data",
        f"- Dataset: {provenance.get('dataset', 'n/a')} ({provenance.get('source', '')})",
        f"- Split sizes: {', '.join(f'{k} {v}' for k, v in sizes.items()) or 'n/a'}",
    ]
    lines += _fit_on_lines(metadata.get("training", {}))
    for name, digest in list(provenance.get("files", {}).items())[:10]:
        lines.append(f"- `{name}` sha256 `{digest}`")
    if metadata.get("ensemble"):
        lines += ensemble_section(metadata["ensemble"])
    if "test" not in metrics:
        lines += ["", "## Metrics", "", "No test split of its own (trained with test fraction "
                  "0): evaluate it on an external set, `meddx evaluate BUNDLE --dataset PATH "
                  "--split all`."]
    for split in ("test", "val"):
        if split in metrics:
            lines += ["", f"## Metrics on the {split} split (n = {metrics[split].get('n', '?')})",
                      "", metrics_table(metrics[split])]
    lines += [
        "",
        "## Limitations",
        "- Trained on one public dataset; performance on other sites, devices and populations "
        "is unknown until validated locally.",
        "- Confidence intervals are 95% percentile bootstrap intervals over cases; they do not "
        "cover shifts in the population.",
        *[f"- {item}" for item in metadata.get("limitations", [])],
    ]
    return "\n".join(lines) + "\n"
