"""mlscope: compare, explain, manage and serve MLflow models."""

__version__ = "0.1.0"
