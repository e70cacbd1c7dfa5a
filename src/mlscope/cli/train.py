"""`mlscope train`: train the declared experiments into MLflow and register the models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlscope.cli.common import console, err_console, quiet_mlflow, settings_of, user_errors
from mlscope.config import Settings
from mlscope.errors import BadInput

# MLflow, scikit-learn and pandas are imported inside the commands: `mlscope --help` stays fast,
# and `train` starts its worker processes before the main process spends seconds importing MLflow.
if TYPE_CHECKING:
    from mlscope.data.loader import Dataset
    from mlscope.task import Task
    from mlscope.training.experiments import ExperimentSpec
    from mlscope.training.runner import TrainReport
    from mlscope.training.track import RunResult

STEPS = ("fit + cross-validate", "evaluate", "log model", "register")


class _Bars:
    """Rich progress bars: one overall bar, one line for the experiment in flight."""

    def __init__(self, progress: Progress, total: int, explain: bool) -> None:
        self.progress = progress
        self.overall = progress.add_task("training", total=total * len(STEPS))
        self.current = None
        self._finished = 0
        self.explaining = progress.add_task("Shapley explanations", total=total) if explain else None

    def experiment_started(self, spec: ExperimentSpec) -> None:
        self.current = self.progress.add_task(spec.name, total=len(STEPS))

    def step(self, spec: ExperimentSpec, name: str) -> None:
        done = STEPS.index(name) if name in STEPS else 0
        self.progress.update(self.current, completed=done, description=f"{spec.name}: {name}")
        self.progress.update(self.overall, completed=self._base + done)

    def experiment_done(self, result: RunResult) -> None:
        status = "[green]done[/]" if result.status == "FINISHED" else "[red]failed[/]"
        self.progress.update(self.current, completed=len(STEPS), description=f"{result.spec.name}: {status}")
        self._finished += 1
        self.progress.update(self.overall, completed=self._base)

    def explained(self, result: RunResult) -> None:
        if self.explaining is not None:
            self.progress.advance(self.explaining)

    @property
    def _base(self) -> int:
        return self._finished * len(STEPS)


def load_dataset(data: Path | None, target: str | None, kaggle: str | None, id_column: str | None,
                 features: list[str] | None, slices: list[str] | None, task: str | None = None,
                 dataset: str | None = None) -> Dataset:
    """The dataset the options name: a CSV, a Kaggle dataset, a shipped demo (Titanic by default)."""
    from mlscope.data.loader import load_csv, load_demo, load_kaggle

    if sum(bool(source) for source in (data, kaggle, dataset)) > 1:
        raise BadInput("give one of --data, --kaggle or --dataset", field="data")
    if (data or kaggle) and not target:
        raise BadInput("--target is required with --data or --kaggle", field="target")
    if data:
        return load_csv(data, target, id_column=id_column, features=features, slices=slices, task=task)
    if kaggle:
        return load_kaggle(kaggle, target, id_column=id_column, features=features, slices=slices, task=task)
    if target or features or id_column or slices:
        raise BadInput("--target/--features/--id-column/--slice need --data or --kaggle", field="data")
    if task:
        raise BadInput("--task needs --data or --kaggle (a shipped dataset knows its task)", field="task")
    return load_demo(dataset or "titanic")


DEMO_MODEL_NAMES = {"titanic": "titanic-survival", "diabetes": "diabetes-progression", "wine": "wine-cultivar"}


def demo_settings(settings: Settings, dataset: str) -> Settings:
    """A shipped dataset trains into its own experiment and registered model, unless names were given."""
    updates = {"experiment_name": dataset, "model_name": DEMO_MODEL_NAMES.get(dataset, dataset)}
    return settings.model_copy(update={k: v for k, v in updates.items() if k not in settings.model_fields_set})


SHORT = {"accuracy": "acc", "precision": "prec", "recall": "rec", "f1": "f1", "roc_auc": "auc",
         "log_loss": "logloss", "balanced_accuracy": "bal acc", "f1_macro": "f1 macro", "f1_weighted": "f1 wtd",
         "rmse": "rmse", "mae": "mae", "r2": "r²", "mape": "mape", "max_error": "max err"}
TITLES = {"binary": "Binary classification", "multiclass": "Multiclass classification", "regression": "Regression"}


def summary_columns(task: Task) -> tuple[str, ...]:
    """The task's test metrics for the summary table, its headline first."""
    return (task.headline, *(name for name in task.metric_names if name != task.headline))


def summary_table(report: TrainReport, aliases: dict[str, list[str]], task: Task) -> Table:
    title = (f"{TITLES[task.name]}: experiment '{report.experiment_name}' → model '{report.model_name}' "
             "(test split)")
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("")
    table.add_column("run")
    table.add_column("type")
    columns = summary_columns(task)
    for name in columns:
        table.add_column(SHORT.get(name, name), justify="right")
    table.add_column(f"cv {SHORT.get(task.headline, task.headline)}", justify="right")
    table.add_column("version")
    table.add_column("time", justify="right")
    for result in report.results:
        best = report.best is not None and result is report.best
        cells = [f"{result.metrics[m]:.3f}" if m in result.metrics else "—" for m in columns]
        name = f"[bold]{result.spec.name}[/]" if best else result.spec.name
        if result.status != "FINISHED":
            name = f"{result.spec.name} [red]{result.status}[/]"
        version = result.version or "—"
        badges = " ".join(f"@{a}" for a in sorted(aliases.get(result.version or "", [])))
        table.add_row("★" if best else "", name, result.spec.model_type, *cells, _cv(result, task.headline),
                      f"v{version} {badges}".strip() if result.version else version, f"{result.seconds:.1f}s")
    return table


def _cv(result: RunResult, metric: str) -> str:
    mean, std = result.metrics.get(f"cv_{metric}_mean"), result.metrics.get(f"cv_{metric}_std")
    return f"{mean:.3f} ± {std:.3f}" if mean is not None and std is not None else "—"


def run_training(settings: Settings, dataset: Dataset, experiments: Path | None, enable: list[str] | None,
                 only: list[str] | None, promote: bool, explain: bool = True) -> TrainReport:
    """Validate, train with progress bars, print the summary; shared by `train` and `demo`."""
    from mlscope.training.experiments import load_plan
    from mlscope.training.prepare import prepare

    plan = load_plan(experiments or settings.experiments_file, dataset.task)
    specs = plan.select(enable=enable, only=only)
    if not specs:
        raise BadInput("no experiment selected (all are disabled?)", field="experiments")
    explain_spec = plan.explain if explain else replace(plan.explain, enabled=False)
    prepared = prepare(dataset, plan.split, specs, explain_spec)  # the workers fit while MLflow imports

    from mlscope.training import runner

    quiet_mlflow()
    classes = f", {len(dataset.classes)} classes" if dataset.task.classification else ""
    console.print(f"Training {len(specs)} experiment(s) on [bold]{dataset.name}[/] "
                  f"({len(dataset.frame)} rows, {dataset.task.name}{classes}) into {settings.tracking_uri}",
                  highlight=False)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        report = runner.train(settings, prepared, plan.selection, promote=promote,
                              progress=_Bars(progress, len(specs), explain_spec.enabled))
    from mlscope.tracking import registry
    from mlscope.tracking.client import make_client

    by_version: dict[str, list[str]] = {}
    if any(r.version for r in report.results):
        for alias, version in registry.aliases(make_client(settings), settings.model_name).items():
            by_version.setdefault(version, []).append(alias)
    console.print(summary_table(report, by_version, dataset.task))
    if report.selection_note:
        console.print(f"[bold]Selection:[/] {report.selection_note}", highlight=False)
    if report.best is not None:
        console.print(f"[bold]Best:[/] {report.best.spec.name} (version {report.best_version}) by "
                      f"{report.selection.metric} = {report.best_value:.4f}")
    elif report.best_version:
        console.print(f"[bold]Best:[/] version {report.best_version} (an earlier run) by "
                      f"{report.selection.metric} = {report.best_value:.4f}")
    for event in report.alias_events:
        moved = f" (was v{event.previous_version})" if event.previous_version else ""
        console.print(f"Alias [bold]{event.alias}[/] → version {event.version}{moved}")
    for result in report.failed:
        err_console.print(f"[bold red]failed:[/] {result.spec.name}: {result.error}", highlight=False)
    for result in report.results:
        if result not in report.failed and result.error:
            err_console.print(f"[bold yellow]warning:[/] {result.spec.name}: {result.error}", highlight=False)
    console.print(f"Finished in {report.seconds:.1f}s.")
    return report


def train(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option(help="CSV file (binary, multiclass or regression target).")] = None,
    target: Annotated[str | None, typer.Option(help="Target column of --data/--kaggle.")] = None,
    task: Annotated[str | None, typer.Option(
        help="binary, multiclass or regression (inferred from the target when not given).")] = None,
    dataset: Annotated[str | None, typer.Option(help="A shipped dataset: titanic (default), diabetes, wine.")] = None,
    kaggle: Annotated[str | None, typer.Option(help="Kaggle dataset OWNER/DATASET (needs credentials).")] = None,
    id_column: Annotated[str | None, typer.Option(help="Row id column of --data.")] = None,
    features: Annotated[list[str] | None, typer.Option("--feature", help="Feature column (repeatable).")] = None,
    slices: Annotated[list[str] | None, typer.Option("--slice", help="Fairness slice column (repeatable).")] = None,
    experiments: Annotated[Path | None, typer.Option(help="Experiments TOML file.")] = None,
    enable: Annotated[list[str] | None, typer.Option(help="Also run this disabled experiment.")] = None,
    only: Annotated[list[str] | None, typer.Option(help="Run only this experiment (repeatable).")] = None,
    experiment_name: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    model_name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    promote: Annotated[bool, typer.Option(help="Also move the 'production' alias to the best version.")] = False,
    explain: Annotated[bool, typer.Option(help="Log each run's Shapley explanation of the test split.")] = True,
) -> None:
    """Train the declared experiments, log them to MLflow, register the models, alias the best."""
    settings = settings_of(ctx)
    updates = {k: v for k, v in {"experiment_name": experiment_name, "model_name": model_name}.items() if v}
    settings = settings.model_copy(update=updates)
    if dataset:
        settings = demo_settings(settings, dataset)
    from mlscope.training import workers

    workers.warm_up()
    with user_errors():
        loaded = load_dataset(data, target, kaggle, id_column, features, slices, task, dataset)
        report = run_training(settings, loaded, experiments, enable, only, promote, explain)
    if report.failed:
        raise typer.Exit(1)
