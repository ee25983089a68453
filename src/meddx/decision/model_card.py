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
        f"- Network: {metadata.get('network', {}).get('arch', 'n/a')}, trained from scratch "
        f"({metadata.get('training', {}).get('epochs_run', '?')} epochs, best epoch "
        f"{metadata.get('training', {}).get('best_epoch', '?')}, "
        f"{metadata.get('training', {}).get('elapsed_s', 0) / 60:.1f} min)",
    ]
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
    for name, digest in list(provenance.get("files", {}).items())[:10]:
        lines.append(f"- `{name}` sha256 `{digest}`")
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
