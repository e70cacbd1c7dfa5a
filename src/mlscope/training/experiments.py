"""Declarative experiment specs, read from TOML (the shipped file or the user's)."""

from __future__ import annotations

import importlib
import re
import tomllib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator, clone, is_classifier, is_regressor

from mlscope import task as tasks
from mlscope.errors import BadInput
from mlscope.task import Task

# PRODUCT.md fixes these seed parameters; scikit-learn 1.8/1.9 deprecate them. Only these two
# warnings are silenced: any other deprecation reaches the user.
_SEED_DEPRECATIONS = (r".*'penalty' was deprecated", r"The `probability` parameter was deprecated")


@contextmanager
def quiet_seed_deprecations() -> Iterator[None]:
    with warnings.catch_warnings():
        for pattern in _SEED_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)
        yield


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_NONE = "None"


@dataclass(frozen=True)
class ExperimentSpec:
    """One training run to perform: an estimator class and its constructor parameters."""

    name: str
    title: str
    model_type: str
    estimator: str
    params: dict[str, Any]
    enabled: bool = True

    def build(self, task: Task = tasks.BINARY) -> BaseEstimator:
        """A fresh, unfitted estimator; BadInput when it cannot learn `task`."""
        return _instantiate(self, task)


@dataclass(frozen=True)
class SelectionRule:
    """How the best version is chosen: a metric, its direction, a tie breaker."""

    metric: str = "roc_auc"
    direction: str = "max"
    tie_breaker: str = "accuracy"

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max"

    def for_task(self, task: Task) -> tuple[SelectionRule, str | None]:
        """This rule if `task` logs its metric (test or cv_<m>_mean), else the task's headline rule, with
        a sentence saying so. A tie breaker the task does not log becomes the task's own."""
        def logged(metric: str) -> bool:
            name = metric[3:-5] if metric.startswith("cv_") and metric.endswith("_mean") else metric
            return name in task.metric_names
        if not logged(self.metric):
            rule = SelectionRule(task.headline, task.direction(task.headline), task.tie_breaker)
            return rule, (f"{self.metric} is not a {task.name} metric: the best version is chosen by "
                          f"{rule.metric} ({'higher' if rule.higher_is_better else 'lower'} is better) instead")
        if self.tie_breaker and not logged(self.tie_breaker):
            return SelectionRule(self.metric, self.direction, task.tie_breaker), None
        return self, None


@dataclass(frozen=True)
class SplitSpec:
    """Hold-out split and cross-validation settings."""

    test_size: float = 0.2
    random_state: int = 42
    cv_folds: int = 5


@dataclass(frozen=True)
class ExplainSpec:
    """Shapley explanation of the test split logged with every run."""

    enabled: bool = True
    background_size: int = 100
    background_seed: int = 42


@dataclass(frozen=True)
class ExperimentPlan:
    """Everything a TOML file declares."""

    source: str
    experiments: list[ExperimentSpec]
    selection: SelectionRule = field(default_factory=SelectionRule)
    split: SplitSpec = field(default_factory=SplitSpec)
    explain: ExplainSpec = field(default_factory=ExplainSpec)
    task: Task = tasks.BINARY

    def select(self, enable: list[str] | None = None, only: list[str] | None = None) -> list[ExperimentSpec]:
        """The experiments to run: enabled ones plus `enable`, or exactly `only`."""
        known = {spec.name for spec in self.experiments}
        for name in [*(enable or []), *(only or [])]:
            if name not in known:
                raise BadInput(f"no experiment named '{name}' in {self.source}", field="experiments")
        if only:
            return [spec for spec in self.experiments if spec.name in only]
        return [spec for spec in self.experiments if spec.enabled or spec.name in (enable or [])]


PLAN_FILES = {"binary": "experiments.toml", "regression": "experiments_regression.toml",
              "multiclass": "experiments_multiclass.toml"}


def default_experiments_path(task: Task = tasks.BINARY) -> Path:
    """The TOML file shipped with mlscope for `task` (binary: the four seed experiments + an optional fifth)."""
    return Path(str(resources.files("mlscope.training").joinpath(PLAN_FILES[task.name])))


def _import_class(path: str, where: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise BadInput(f"{where}: estimator '{path}' must be a full import path like "
                       "sklearn.ensemble.RandomForestClassifier", field="estimator")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise BadInput(f"{where}: unknown model class '{path}' (module '{module_name}' not found)",
                       field="estimator") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise BadInput(f"{where}: unknown model class '{path}'", field="estimator")
    return cls


def _instantiate(spec: ExperimentSpec, task: Task) -> BaseEstimator:
    where = f"experiment '{spec.name}'"
    cls = _import_class(spec.estimator, where)
    params = {key: (None if value == _NONE else value) for key, value in spec.params.items()}
    try:
        with quiet_seed_deprecations():
            estimator = cls(**params)
    except TypeError as exc:
        raise BadInput(f"{where}: bad parameters for {cls.__name__}: {exc}", field="params") from None
    _check_fits_task(estimator, spec, task, where)
    try:
        clone(estimator)
    except Exception as exc:  # noqa: BLE001 - sklearn raises several types for non-estimators
        raise BadInput(f"{where}: {spec.estimator} is not a scikit-learn estimator: {exc}",
                       field="estimator") from None
    return estimator


def _tagged(check: Any, estimator: object) -> bool:
    """scikit-learn's is_classifier / is_regressor; False for an estimator without scikit-learn's tags."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(check(estimator))
    except Exception:  # noqa: BLE001 - a foreign estimator: judged by its methods alone
        return False


def _check_fits_task(estimator: object, spec: ExperimentSpec, task: Task, where: str) -> None:
    """A classification task needs a classifier with predict_proba, regression a regressor (or, without
    scikit-learn's tags, an estimator with predict and without predict_proba)."""
    regressor, classifier = _tagged(is_regressor, estimator), _tagged(is_classifier, estimator)
    if task.classification:
        if regressor:
            raise BadInput(f"{where}: {spec.estimator} is a regressor; a {task.name} task needs a classifier "
                           "with predict_proba", field="estimator")
        if not (hasattr(estimator, "fit") and hasattr(estimator, "predict_proba")):
            raise BadInput(f"{where}: {spec.estimator} is not a classifier with predict_proba "
                           "(for SVC set probability = true)", field="estimator")
        return
    if classifier or not (hasattr(estimator, "fit") and hasattr(estimator, "predict")) or (
            not regressor and hasattr(estimator, "predict_proba")):
        raise BadInput(f"{where}: {spec.estimator} is not a regressor; a regression task needs one "
                       "(e.g. sklearn.ensemble.RandomForestRegressor)", field="estimator")


def _spec(raw: dict[str, Any], index: int, source: str) -> ExperimentSpec:
    where = f"{source}: experiment #{index + 1}"
    unknown = set(raw) - {"name", "title", "model_type", "estimator", "params", "enabled"}
    if unknown:
        raise BadInput(f"{where}: unknown key(s) {', '.join(sorted(unknown))}", field="experiments")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(f"{where}: 'name' must be letters, digits, '-' or '_' (got {name!r})", field="name")
    estimator = raw.get("estimator")
    if not isinstance(estimator, str):
        raise BadInput(f"{where}: 'estimator' (an import path) is required", field="estimator")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise BadInput(f"{where}: 'params' must be a table", field="params")
    default_type = re.sub(r"(?<!^)(?=[A-Z])", "_", estimator.rpartition(".")[2]).lower()
    return ExperimentSpec(
        name=name,
        title=str(raw.get("title", name)),
        model_type=str(raw.get("model_type", default_type)),
        estimator=estimator,
        params=dict(params),
        enabled=bool(raw.get("enabled", True)),
    )


def _selection(raw: dict[str, Any], source: str) -> SelectionRule:
    rule = SelectionRule(**{k: v for k, v in raw.items() if k in ("metric", "direction", "tie_breaker")})
    if rule.direction not in ("max", "min"):
        raise BadInput(f"{source}: [selection] direction must be 'max' or 'min'", field="direction")
    return rule


def _split(raw: dict[str, Any], source: str) -> SplitSpec:
    split = SplitSpec(**{k: v for k, v in raw.items() if k in ("test_size", "random_state", "cv_folds")})
    if not (0 < float(split.test_size) < 1) or int(split.cv_folds) < 2:
        raise BadInput(f"{source}: [split] needs 0 < test_size < 1 and cv_folds >= 2", field="split")
    return split


def _explain(raw: dict[str, Any], source: str) -> ExplainSpec:
    unknown = set(raw) - {"enabled", "background_size", "background_seed"}
    if unknown:
        raise BadInput(f"{source}: unknown key(s) in [explain]: {', '.join(sorted(unknown))}", field="explain")
    spec = ExplainSpec(**raw)
    if not isinstance(spec.background_size, int) or spec.background_size < 1:
        raise BadInput(f"{source}: [explain] background_size must be a positive integer", field="explain")
    return spec


def load_plan(path: Path | None = None, task: Task = tasks.BINARY) -> ExperimentPlan:
    """Parse and validate an experiments TOML file for `task` (the shipped file for the task when `path`
    is None); every estimator is built once to check it can learn the task."""
    path = path or default_experiments_path(task)
    source = path.name
    if not path.is_file():
        raise BadInput(f"experiments file not found: {path}", field="experiments")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{source} is not valid TOML: {exc}", field="experiments") from None
    entries = raw.get("experiment")
    if not isinstance(entries, list) or not entries:
        raise BadInput(f"{source} declares no [[experiment]] tables", field="experiments")
    specs = [_spec(entry, i, source) for i, entry in enumerate(entries)]
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadInput(f"{source}: duplicate experiment name(s): {', '.join(duplicates)}", field="name")
    for spec in specs:
        spec.build(task)
    return ExperimentPlan(
        source=source,
        experiments=specs,
        selection=_selection(raw.get("selection", {}), source),
        split=_split(raw.get("split", {}), source),
        explain=_explain(raw.get("explain", {}), source),
        task=task,
    )
