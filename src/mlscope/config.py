"""The one settings object. Built by `load_settings()` and passed in; nothing reads env at import."""

from __future__ import annotations

import getpass
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlscope.errors import BadInput

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


class Settings(BaseSettings):
    """mlscope configuration. Every field can be set as `MLSCOPE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="MLSCOPE_", extra="ignore", populate_by_name=True)

    tracking_uri: str = Field(
        default=DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MLSCOPE_TRACKING_URI"),
        description="MLflow tracking URI (MLflow's own MLFLOW_TRACKING_URI is honoured).",
    )
    registry_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_REGISTRY_URI", "MLSCOPE_REGISTRY_URI"),
        description="MLflow registry URI; defaults to the tracking URI.",
    )
    artifact_root: str | None = Field(
        default=None,
        description="Artifact location for experiments mlscope creates; MLflow's default (./mlruns) when unset.",
    )
    experiment_name: str = Field(default="titanic", description="MLflow experiment to train into.")
    model_name: str = Field(default="titanic-survival", description="Registered model name.")
    experiments_file: Path | None = Field(
        default=None, description="TOML file of experiment specs; the shipped one when unset."
    )
    host: str = Field(default="127.0.0.1", description="Host the web entry point binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the web entry point.")
    alias: str = Field(default="production", description="Registry alias whose version `mlscope serve` serves.")
    api_port: int = Field(default=8001, ge=1, le=65535, description="Port of the prediction API.")
    poll_seconds: float = Field(default=10.0, gt=0, description="How often the API checks whether the alias moved.")
    retry_seconds: float = Field(default=1.0, gt=0,
                                 description="First retry delay while no model can be loaded (doubles, up to 30 s).")
    max_batch_rows: int = Field(default=10_000, ge=1, description="Most rows one /predict/batch request may send.")
    api_workers: int = Field(default=1, ge=1, le=64,
                             description="Processes of `mlscope serve` sharing the API port; each loads the model "
                             "and follows the alias itself.")
    user: str = Field(default_factory=getpass.getuser, description="Name recorded in audit tags.")
    token: SecretStr | None = Field(
        default=None, description="When set, the dashboard's mutating actions (promote, compute) need it as a bearer token.")
    protect_reads: bool = Field(default=False, description="With a token set, require it for the dashboard's reads too.")
    headline_metric: str = Field(default="roc_auc", description="Metric the dashboard ranks runs and experiments by.")
    mlflow_ui_url: str | None = Field(
        default=None, description="Base URL of the stock MLflow UI; run pages link to it when set.")
    tracking_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Dashboard: seconds an HTTP tracking server may take per request.")
    tracking_retries: int = Field(default=2, ge=0, description="Dashboard: retries of a failing HTTP tracking request.")
    backend_store_uri: str | None = Field(
        default=None, description="`mlscope up`: database of the MLflow tracking server it starts (postgresql://...).")
    artifacts_destination: Path = Field(
        default=Path("mlartifacts"), description="`mlscope up`: folder the tracking server stores artifacts in.")
    mlflow_port: int = Field(default=5000, ge=1, le=65535, description="`mlscope up`: port of the tracking server.")
    mlflow_workers: int = Field(default=1, ge=1, le=64,
                                description="`mlscope up`: uvicorn workers of the tracking server.")
    log_dir: Path = Field(default=Path("mlscope-logs"), description="`mlscope up`: folder of the children's logs.")
    explain_tolerance: float = Field(
        default=1e-3, gt=0, description="Sampled explanations (models too wide to enumerate, not trees or linear): "
        "sampling stops once every value's standard error is at most this (probability units).")
    explain_max_evaluations: int = Field(
        default=20_000_000, ge=1, description="Sampled explanations: most model evaluations one request may spend "
        "before it stops and reports the standard errors reached.")
    explain_max_seconds: float = Field(
        default=120.0, gt=0, description="Sampled explanations: most seconds one request may sample before it stops "
        "and reports the standard errors reached.")
    monitor_dir: Path = Field(
        default=Path("mlscope-monitoring"), description="Prediction log and feedback of `mlscope serve` (Parquet "
        "part files, read with DuckDB by `mlscope monitor` and the Production view); shared by the API's workers.")
    log_predictions: bool = Field(default=True, description="`mlscope serve` logs predictions to `monitor_dir`.")
    log_sample_rate: float = Field(default=1.0, ge=0, le=1,
                                   description="Share of requests whose predictions are logged (1: every one).")
    log_flush_seconds: float = Field(
        default=1.0, gt=0, le=60, description="The prediction log is written at least this often: at most this "
        "many seconds of predictions are lost if the process is killed (nothing on SIGTERM).")
    log_buffer_rows: int = Field(
        default=200_000, ge=1, description="Most predictions held in memory before a write; beyond it rows are "
        "dropped and counted (mlscope_prediction_log_dropped_total) instead of growing memory.")
    log_retention_days: float = Field(default=30.0, gt=0,
                                      description="Logged predictions and feedback older than this are deleted.")
    drift_watch_psi: float = Field(default=0.1, gt=0, description="PSI at or above which a feature is 'watch'.")
    drift_alert_psi: float = Field(default=0.25, gt=0, description="PSI at or above which a feature is 'alert'.")
    drift_p_value: float = Field(
        default=0.01, gt=0, lt=1, description="A feature is only flagged when its test (KS or chi-squared) also "
        "rejects 'same distribution' at this level.")
    monitor_window: str = Field(default="24h", description="Default window of `mlscope monitor` and the Production "
                                "view (e.g. 30m, 24h, 7d).")
    trust_registry_models: bool = Field(
        default=True,
        description="Allow loading pickled models from the configured registry "
        "(sets MLflow's MLFLOW_ALLOW_PICKLE_DESERIALIZATION while loading).",
    )

    def explain_limits(self) -> dict[str, float | int]:
        """The sampler's stopping rule, as ShapleyExplainer keyword arguments."""
        return {"tolerance": self.explain_tolerance, "max_evaluations": self.explain_max_evaluations,
                "max_seconds": self.explain_max_seconds}


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, then apply non-None overrides (CLI options). A bad value
    is a BadInput naming its variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise BadInput(_first_problem(exc), field=str(exc.errors()[0]["loc"][0])) from None
    updates = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=updates) if updates else settings


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "settings"
    variable = name if name.isupper() else f"MLSCOPE_{name.upper()}"
    return f"{variable}={error.get('input')!r}: {error['msg']}"
