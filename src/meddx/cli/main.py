"""``meddx`` command line: a thin typer layer over :mod:`meddx.api`.

Expected failures (:class:`~meddx.errors.MeddxError`) print one line naming the file and the
problem and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from meddx import __version__
from meddx.errors import MeddxError

app = typer.Typer(name="meddx", no_args_is_help=True, pretty_exceptions_enable=False,
                  help="AI-assisted medical diagnosis: train, evaluate, explain, deploy.")
datasets_app = typer.Typer(no_args_is_help=True, help="The dataset catalog.")
app.add_typer(datasets_app, name="datasets")
# The clinician workstation: `meddx serve`, `meddx users create`, `meddx feedback export`.
from meddx.workstation.cli import feedback_app, serve, users_app  # noqa: E402

app.command()(serve)
app.add_typer(users_app, name="users")
app.add_typer(feedback_app, name="feedback")
# DICOM and PACS: `meddx dicom deidentify / info / echo / query / send / retrieve / listen / retry`.
from meddx.pacs.cli import dicom_app  # noqa: E402

app.add_typer(dicom_app, name="dicom")

console = Console(stderr=True)
out = Console()

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Dataset folder (default: $MEDDX_DATA_DIR, else the user cache).")]
DatasetOpt = Annotated[str, typer.Option("--dataset", "-d",
                                         help="Catalog name, or a path (.npz, CSV, folder).")]


def _print_json(data) -> None:
    out.print_json(json.dumps(data))


def _check_bundle(bundle: Path) -> None:
    """Refuse a wrong bundle path before the model's stack loads (torch, and MONAI for image
    models: 4-12 s on 2 cores)."""
    from meddx.decision.bundle import load_bundle

    load_bundle(bundle)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])


@app.command()
def version() -> None:
    """Print the meddx version."""
    out.print(f"meddx {__version__}")


@datasets_app.command("list")
def datasets_list(data_dir: DataDir = None,
                  as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False):
    """List catalog datasets and whether they are present in the data directory."""
    from meddx.data.catalog import list_datasets, resolve_data_dir

    rows = list_datasets(data_dir)
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"datasets in {resolve_data_dir(data_dir)}")
    for column in ("name", "kind", "task", "present", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["kind"], row["task"],
                      "[green]yes" if row["present"] else "[red]no", row["description"])
    out.print(table)


@datasets_app.command("fetch")
def datasets_fetch(name: str, data_dir: DataDir = None):
    """Download a catalog dataset (verifying checksums) unless it is already present."""
    from meddx.data.catalog import fetch

    path = fetch(name, data_dir, progress=True)
    out.print(f"{name}: {path}")


StopOnBadCase = Annotated[bool, typer.Option(
    "--stop-on-bad-case", help="Stop at the first unreadable case (volume, record) instead of "
                               "reporting and skipping it.")]


@app.command()
def train(
    dataset: DatasetOpt,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")],
    data_dir: DataDir = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 30,
    time_budget: Annotated[float | None, typer.Option(
        "--time-budget", help="Wall-clock budget in minutes.")] = None,
    arch: Annotated[str | None, typer.Option(
        help="Network (default: chosen by input size).")] = None,
    input_size: Annotated[int | None, typer.Option(help="Resize inputs to this size.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs (0: off).")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    amp: Annotated[str, typer.Option(
        help="bf16 autocast: auto (on GPUs that support it), bf16 or off.")] = "auto",
    ensemble: Annotated[int, typer.Option(
        help="Train this many networks (seeds seed..seed+K-1) and average their "
             "probabilities; the time budget covers all of them.")] = 1,
    plan_file: Annotated[Path | None, typer.Option(
        "--plan", help="JSON file of plan overrides (arch, augment, imbalance...).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run.")] = False,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    stop_on_bad_case: StopOnBadCase = False,
    test_fraction: Annotated[float | None, typer.Option(
        help="WFDB record folders: share of the records held out as the bundle's test split "
             "(default 0.2); 0: none, when the test set is elsewhere (MIT-BIH DS2).")] = None,
):
    """Train a model and write an evaluated bundle."""
    from meddx.api import train as train_api
    from meddx.errors import ConfigError

    plan = {}
    if plan_file is not None:
        try:
            plan = json.loads(plan_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"{plan_file}: cannot read the plan overrides ({error})") from error
    for key, value in (("arch", arch), ("input_size", input_size), ("batch_size", batch_size)):
        if value is not None:
            plan[key] = value
    bundle = train_api(dataset, out_dir, data_dir=data_dir, plan=plan, resume=resume,
                       progress=progress, epochs=epochs, time_budget_min=time_budget, lr=lr,
                       patience=patience, seed=seed, amp=amp, ensemble=ensemble,
                       on_error="stop" if stop_on_bad_case else "skip",
                       test_fraction=test_fraction)
    test = bundle.metadata["metrics"].get("test", {})
    out.print(f"bundle: {bundle.path}")
    if test.get("task") == "segmentation":
        out.print(f"test Dice {test['dice']}  HD95 {test['hd95']}  "
                  f"report: {bundle.path / 'report' / 'report.html'}")
    elif test:
        out.print(f"test AUC {test.get('auc', float('nan')):.4f}  "
                  f"accuracy {test.get('accuracy', float('nan')):.4f}  "
                  f"report: {bundle.path / 'report' / 'report.html'}")


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    dataset: DatasetOpt,
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "test",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write metrics here.")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Report folder (default: beside the JSON, else ./evaluation-report).")] = None,
    data_dir: DataDir = None,
    stop_on_bad_case: StopOnBadCase = False,
):
    """Evaluate a bundle on a labelled dataset: metrics with 95% CIs, and a report."""
    _check_bundle(bundle)
    from meddx.api import evaluate as evaluate_api

    if report is None:
        report = (json_path.parent / f"{json_path.stem}-report" if json_path
                  else Path("evaluation-report"))
    metrics = evaluate_api(bundle, dataset, split=split, data_dir=data_dir, json_path=json_path,
                           report_dir=report, on_error="stop" if stop_on_bad_case else "skip")
    if metrics.get("task") == "segmentation":
        _print_segmentation(metrics, f"{bundle.name} on {metrics['dataset']} ({split})", json_path)
        return
    keys = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "ece")
    table = Table(title=f"{bundle.name} on {metrics['dataset']} ({split}, n={metrics['n']})")
    table.add_column("metric")
    table.add_column("value")
    table.add_column("95% CI")
    for key in keys:
        value, interval = metrics.get(key), metrics["ci"].get(key)
        table.add_row(key, "n/a" if value is None else f"{value:.4f}",
                      "" if not interval or None in interval
                      else f"{interval[0]:.4f}-{interval[1]:.4f}")
    out.print(table)
    out.print(f"report: {metrics['report']}")
    if json_path:
        out.print(f"json: {json_path}")


def _print_segmentation(metrics, title: str, json_path: Path | None) -> None:
    from meddx.learn.evaluation.segmentation_report import summary_table

    header, rows = summary_table(metrics)
    table = Table(title=f"{title}, n={metrics['n']}")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    out.print(table)
    out.print(f"report: {metrics.get('report')}")
    if json_path:
        out.print(f"json: {json_path}")


@app.command()
def predict(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    files: Annotated[list[Path] | None, typer.Argument(
        help="PNG/JPEG, DICOM, NIfTI or .npy files (optional with --record/--csv/--text).")
    ] = None,
    explain: Annotated[bool, typer.Option(
        help="Write explanation plots (Grad-CAM, SHAP, word attributions).")] = False,
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Where heat maps (segmentation: masks, volumes JSON) go.")] = Path(
        "predictions"),
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    overlay: Annotated[bool, typer.Option(
        help="Segmentation: also write PNG slices with the mask drawn on the image.")] = False,
    fs: Annotated[float | None, typer.Option(
        "--fs", help="ECG: sampling rate in Hz of CSV signals (WFDB records carry theirs).")
    ] = None,
    record: Annotated[str | None, typer.Option(
        help='Clinical record as JSON, e.g. \'{"Glucose": 148, "BMI": 33.6}\' (or a list).')
    ] = None,
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", help="Clinical records: a CSV/TSV file, one patient per row.")] = None,
    text: Annotated[list[str] | None, typer.Option(
        help="Symptom description (repeat for several).")] = None,
    stop_on_bad_case: Annotated[bool, typer.Option(
        "--stop-on-bad-case", help="Stop at the first file that cannot be predicted instead of "
                                   "reporting it and going on with the others.")] = False,
):
    """Predict files: class probabilities, decision, uncertainty (and heat maps).

    ECG beat models take WFDB records (``data/101``) or CSV signals with ``--fs``. A file that
    cannot be predicted gets its error as its result and the others go on; the exit status is
    then 2."""
    _check_bundle(bundle)
    from meddx.api import predict as predict_api
    from meddx.fileio import write_json

    if record is not None or csv_file is not None or text:
        from meddx.api import predict_inputs
        from meddx.errors import ConfigError

        records = None
        if record is not None:
            try:
                records = json.loads(record)
            except json.JSONDecodeError as error:
                raise ConfigError(f"--record is not valid JSON ({error})") from error
            records = records if isinstance(records, list) else [records]
        results = predict_inputs(bundle, records=records, table=csv_file, texts=text or None,
                                 explain_dir=out_dir if explain else None)
    elif not files:
        from meddx.errors import ConfigError

        raise ConfigError("give files to predict, or --record, --csv or --text")
    else:
        results = predict_api(bundle, files, explain_dir=out_dir if explain else None,
                              out_dir=out_dir, overlay=overlay, fs=fs,
                              on_error="stop" if stop_on_bad_case else "skip")
    _print_json(results)
    if json_path:
        write_json({"predictions": results}, json_path)
    failed = [result for result in results if "error" in result]
    for result in failed:
        console.print(f"[bold red]error:[/] {result['error']}", highlight=False, soft_wrap=True)
    if failed:
        console.print(f"{len(failed)} of {len(results)} files could not be predicted",
                      highlight=False)
        raise typer.Exit(2)


@app.command()
def crossval(
    source: Annotated[Path, typer.Argument(
        help="Bundle folder, or JSON config {dataset, plan, train}.", metavar="BUNDLE_OR_CONFIG")],
    dataset: Annotated[str | None, typer.Option(
        "--dataset", "-d", help="Catalog name or path (default: the bundle's dataset).")] = None,
    folds: Annotated[int, typer.Option(help="k of stratified k-fold.")] = 5,
    repeats: Annotated[int, typer.Option(help="Repeats with new partitions.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the partitions.")] = 0,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    data_dir: DataDir = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    stop_on_bad_case: StopOnBadCase = False,
):
    """Repeated stratified k-fold cross-validation: mean, SD and 95% CI per metric."""
    from meddx.api import crossval as crossval_api

    result = crossval_api(source, dataset, folds=folds, repeats=repeats, data_dir=data_dir,
                          seed=seed, json_path=json_path, progress=progress,
                          on_error="stop" if stop_on_bad_case else "skip")
    table = Table(title=f"{result['dataset']}: {folds}-fold CV x {repeats} (n={result['n']})")
    for column in ("model", "metric", "mean", "SD", "95% CI"):
        table.add_column(column)
    rows = [("chosen", result["summary"]), *result["models"].items()]
    for model, summary in rows:
        for key in ("auc", "accuracy", "macro_f1", "top_3_accuracy"):
            entry = summary.get(key)
            if not entry or entry["mean"] is None:
                continue
            ci = entry["ci"]
            table.add_row(model, key, f"{entry['mean']:.4f}", f"{entry['std']:.4f}",
                          f"{ci[0]:.4f}-{ci[1]:.4f}" if ci else "")
    out.print(table)
    if json_path:
        out.print(f"json: {json_path}")


@app.command()
def info(bundle: Annotated[Path, typer.Argument(help="Bundle folder.")]):
    """Show a bundle's model card."""
    from meddx.decision.bundle import load_bundle

    out.print(load_bundle(bundle).model_card)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes.")] = Path(
        "runs/demo"),
    data_dir: DataDir = None,
    time_budget: Annotated[float, typer.Option("--time-budget",
                                               help="Training minutes if no model yet.")] = 4.0,
    serve: Annotated[bool, typer.Option(help="Then start the clinician workstation.")] = True,
    port: Annotated[int, typer.Option(help="Workstation port.")] = 8000,
):
    """The main job: PneumoniaMNIST -> trained, evaluated, explained model."""
    from meddx.demo import run_demo

    result = run_demo(out_dir, data_dir, time_budget)
    out.print(f"model bundle:  {result['bundle']}")
    out.print(f"test AUC {result['auc']:.4f}, accuracy {result['accuracy']:.4f}")
    out.print(f"evaluation:    {result['evaluation']}")
    out.print(f"report:        {result['report']}")
    out.print(f"heat map:      {result['example_prediction'].get('explanation')}")
    if serve:
        from meddx.workstation.demo import serve_demo

        serve_demo(out_dir, port=port, print_fn=out.print)


def run() -> None:
    """Console entry point: expected errors become one message and exit status 2."""
    try:
        app()
    except MeddxError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    run()
