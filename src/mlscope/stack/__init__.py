"""The production-like stack: a PostgreSQL-backed MLflow tracking server, the dashboard and the API."""
