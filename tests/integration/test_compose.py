"""The Docker Compose stack (docker-compose.yml, docker/Dockerfile, .env.example), checked without an engine.

What this proves: Compose itself (`docker compose config`, else Debian's `docker-compose config`) accepts
the file, interpolates .env into it the way the tests expect, and refuses to run without
POSTGRES_PASSWORD; the resolved services, health-based dependencies, users, volumes, ports and commands
are the intended ones; the tracking server's argv is the one src/mlscope/stack/tracking_server.py
builds; MLflow's own host-header check accepts the names the stack uses. Static checks (no tool
needed) cover the Dockerfile's user, secrets, health checks and the variables of .env.example.
What it does not prove: that the image builds, that the containers start, or that they talk to each
other. Nothing here runs a Docker engine.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERIGNORE = REPO / ".dockerignore"

SERVICES = {"postgres", "mlflow", "trainer", "dashboard", "api"}
MLSCOPE_SERVICES = {"mlflow", "trainer", "dashboard", "api"}  # the services that run the mlscope image
LONG_RUNNING = {"postgres", "mlflow", "dashboard", "api"}
APP_UID = "10001"
PASSWORD_MESSAGE = "set POSTGRES_PASSWORD in .env"

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
ENV_LINE = re.compile(r"^\s*(#\s*)?([A-Z_][A-Z0-9_]*)=(.*)$")


# --- the validator --------------------------------------------------------------------------------

@functools.cache
def compose_cli() -> tuple[tuple[str, ...] | None, str]:
    """The Compose command that works here: the v2 plugin (`docker compose`), else Debian's v1
    `docker-compose` (whose `config` needs no engine); else None and why."""
    reasons = []
    for argv in (("docker", "compose"), ("docker-compose",)):
        name = " ".join(argv)
        if shutil.which(argv[0]) is None:
            reasons.append(f"{argv[0]} is not installed")
            continue
        try:
            done = subprocess.run([*argv, "version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"`{name} version` failed: {exc}")
            continue
        if done.returncode == 0:
            return argv, ""
        output = (done.stderr or done.stdout).strip().splitlines()
        reasons.append(f"`{name} version` failed: {output[0] if output else f'exit {done.returncode}'}")
    return None, "; ".join(reasons)


def require_compose() -> tuple[str, ...]:
    argv, reason = compose_cli()
    if argv is None:
        pytest.skip(f"neither `docker compose` nor `docker-compose` works ({reason}); "
                    "install Debian's docker-compose to validate docker-compose.yml")
    return argv


def strings(node: object) -> list[str]:
    """Every string (keys and values) in a loaded YAML document: what Compose interpolates."""
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in (*strings(key), *strings(value))]
    if isinstance(node, list):
        return [text for item in node for text in strings(item)]
    return [node] if isinstance(node, str) else []


def interpolations() -> list[re.Match[str]]:
    """The ${NAME...} of docker-compose.yml outside comments."""
    return [match for text in strings(yaml.safe_load(COMPOSE_FILE.read_text())) for match in VARIABLE.finditer(text)]


def compose_variables() -> set[str]:
    """Names docker-compose.yml reads from .env: ${NAME...} and pass-through `NAME:` (null) entries."""
    names = {match.group(1) for match in interpolations()}
    for service in yaml.safe_load(COMPOSE_FILE.read_text())["services"].values():
        environment = service.get("environment") or {}
        names |= {key for key, value in environment.items() if value is None}
    return names


def run_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`config` of docker-compose.yml with exactly `env` as its .env (the caller's shell variables of
    the same names removed, so the developer's environment cannot leak into the result)."""
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    shell = {key: value for key, value in os.environ.items()
             if key not in compose_variables() and not key.startswith("COMPOSE_")}
    argv = [*require_compose(), "--project-directory", str(REPO), "--env-file", str(env_file),
            "-f", str(COMPOSE_FILE), "config"]
    return subprocess.run(argv, capture_output=True, text=True, env=shell, cwd=tmp_path, timeout=120)


def example_env() -> dict[str, str]:
    """The uncommented assignments of .env.example."""
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_LINE.match(line)
        if match and not match.group(1):
            env[match.group(2)] = match.group(3)
    return env


FILLED = {
    **example_env(),
    "POSTGRES_PASSWORD": "Test-only_pw.123",
    "POSTGRES_USER": "tracker",
    "POSTGRES_DB": "tracking",
    "DASHBOARD_PORT": "18000",
    "API_PORT": "18001",
    "MLFLOW_PORT": "15000",
    "MLFLOW_WORKERS": "3",
    "MLSCOPE_TOKEN": "test-token",
    "MLSCOPE_USER": "ops-team",
    "MLSCOPE_API_WORKERS": "2",
}


def resolved(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    done = run_config(tmp_path, env)
    assert done.returncode == 0, f"compose config failed:\n{done.stderr}\n{done.stdout}"
    return yaml.safe_load(done.stdout)


# v1 prints short forms ("src:/dst:rw", "127.0.0.1:8000:8000/tcp"), v2 long forms: compare both alike.

def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume of a resolved service."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            assert volume.get("type", "volume") == "volume", volume
            source, target = volume["source"], volume["target"]
        found[target] = source
    return found


def ports(service: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(host address, published port, container port) of a resolved service."""
    found = set()
    for port in service.get("ports", []):
        if isinstance(port, str):
            host_ip, published, target = port.split("/")[0].rsplit(":", 2)
        else:
            host_ip, published, target = port.get("host_ip", ""), port["published"], port["target"]
        found.add((str(host_ip), str(published), str(target)))
    return found


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# --- Compose validates the file ---------------------------------------------------------------------

@pytest.mark.compose
def test_compose_config_resolves_the_five_services(tmp_path: Path) -> None:
    from mlflow.server.security_utils import is_allowed_host_header

    from mlscope.stack.tracking_server import TrackingServer

    config = resolved(tmp_path, FILLED)
    services = config["services"]
    assert set(services) == SERVICES

    # Health, not start order: everything waits for a healthy MLflow, MLflow for a healthy PostgreSQL.
    expected_deps = {"postgres": set(), "mlflow": {"postgres"}, "trainer": {"mlflow"}, "dashboard": {"mlflow"},
                     "api": {"mlflow"}}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions: {depends}"
        assert set(depends) == expected_deps[name], name
        assert all(dep["condition"] == "service_healthy" for dep in depends.values()), (name, depends)
        assert "healthcheck" in service or name not in LONG_RUNNING, name

    # The mlscope image runs as the unprivileged uid everywhere; PostgreSQL keeps its image's own user.
    for name in MLSCOPE_SERVICES:
        assert services[name]["user"] == f"{APP_UID}:{APP_UID}", name
        assert services[name]["image"] == FILLED["MLSCOPE_IMAGE"]
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["postgres"]["image"] == "postgres:16"

    # Data lives in named volumes.
    assert {"postgres-data", "mlflow-artifacts"} <= set(config["volumes"])
    assert mounts(services["postgres"]) == {"/var/lib/postgresql/data": "postgres-data"}
    assert mounts(services["mlflow"]) == {"/mlartifacts": "mlflow-artifacts"}

    # .env reaches PostgreSQL and the tracking server's store URI.
    assert services["postgres"]["environment"] == {
        "POSTGRES_USER": "tracker", "POSTGRES_PASSWORD": FILLED["POSTGRES_PASSWORD"], "POSTGRES_DB": "tracking"}
    assert "tracker" in services["postgres"]["healthcheck"]["test"]

    # The tracking server is started exactly as stack/tracking_server.py builds it, plus --allowed-hosts.
    command = services["mlflow"]["command"]
    store = f"postgresql://tracker:{FILLED['POSTGRES_PASSWORD']}@postgres:5432/tracking"
    spec = TrackingServer(store, "/mlartifacts", host="0.0.0.0", port=5000, workers=3)
    assert spec.command()[1:3] == ["-m", "mlflow"]
    assert command[: len(spec.command()) - 2] == ["mlflow", *spec.command()[3:]]
    assert command[len(spec.command()) - 2:] == ["--allowed-hosts", FILLED["MLFLOW_ALLOWED_HOSTS"]]
    assert services["mlflow"]["environment"] == spec.environment()
    allowed = option(command, "--allowed-hosts").split(",")
    for host in ("mlflow", "mlflow:5000", "localhost", "localhost:15000", "127.0.0.1:5000"):
        assert is_allowed_host_header(allowed, host), host
    assert not is_allowed_host_header(allowed, "attacker.example")

    # The mlscope services talk to the server by its service name.
    for name in ("trainer", "dashboard", "api"):
        environment = services[name]["environment"]
        assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert environment["MLSCOPE_USER"] == "ops-team", name
        assert "MLSCOPE_ARTIFACT_ROOT" not in environment, name  # artifacts go through the server
    assert services["trainer"]["command"] == ["mlscope", "train", "--promote"]
    assert str(services["trainer"]["restart"]) == "no"
    assert services["dashboard"]["command"] == ["mlscope", "ui", "--host", "0.0.0.0", "--port", "8000"]
    assert services["api"]["command"] == ["mlscope", "serve", "--host", "0.0.0.0", "--port", "8001"]
    assert services["api"]["environment"]["MLSCOPE_API_WORKERS"] == "2"
    assert services["dashboard"]["environment"]["MLSCOPE_TOKEN"] == "test-token"
    assert not any("MLSCOPE_TOKEN" in services[name].get("environment", {}) for name in SERVICES - {"dashboard"})
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name

    # Ports come from .env and are published on the chosen address only.
    assert ports(services["dashboard"]) == {("127.0.0.1", "18000", "8000")}
    assert ports(services["api"]) == {("127.0.0.1", "18001", "8001")}
    assert ports(services["mlflow"]) == {("127.0.0.1", "15000", "5000")}
    assert not ports(services["postgres"]) and not ports(services["trainer"])


@pytest.mark.compose
@pytest.mark.parametrize("password", [None, ""], ids=["absent", "empty"])
def test_compose_config_refuses_a_missing_postgres_password(tmp_path: Path, password: str | None) -> None:
    env = {key: value for key, value in FILLED.items() if key != "POSTGRES_PASSWORD"}
    if password is not None:
        env["POSTGRES_PASSWORD"] = password
    done = run_config(tmp_path, env)
    assert done.returncode != 0, done.stdout
    assert PASSWORD_MESSAGE in done.stderr + done.stdout, done.stderr


@pytest.mark.compose
def test_compose_config_of_the_example_env_leaves_the_token_unset(tmp_path: Path) -> None:
    """With .env.example copied as it is, the dashboard gets no MLSCOPE_TOKEN at all: an empty one
    would be a configured token that no request can present."""
    config = resolved(tmp_path, example_env())
    assert not config["services"]["dashboard"]["environment"].get("MLSCOPE_TOKEN")
    assert ports(config["services"]["dashboard"]) == {("127.0.0.1", "8000", "8000")}
    assert option(config["services"]["mlflow"]["command"], "--workers") == "2"


# --- static checks: no tool needed ------------------------------------------------------------------

def compose_yaml() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in dockerfile.splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip().rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    return lines


def last_stage(dockerfile: str) -> list[str]:
    """Instructions of the final (runtime) stage."""
    lines = instructions(dockerfile)
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    return lines[starts[-1]:]


def test_dockerfile_runs_as_a_fixed_non_root_user() -> None:
    stage = last_stage(DOCKERFILE.read_text())
    assert stage[0].startswith("FROM ${PYTHON_IMAGE}") and "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users, "the final stage has no USER"
    user, _, group = users[-1].partition(":")
    assert user == APP_UID and group == APP_UID, users[-1]
    assert user not in {"root", "0"} and group not in {"root", "0"}
    text = " ".join(stage)
    assert f"--uid {APP_UID}" in text and "install -d -o mlscope -g mlscope /mlartifacts" in text
    assert "PYTHONDONTWRITEBYTECODE=1" in text and "PYTHONUNBUFFERED=1" in text
    # No test extras, no editable install: the dependencies of [project] and then the project itself.
    steps = instructions(DOCKERFILE.read_text())
    installs = [found for line in steps for found in re.findall(r"pip install ([^&;]*)", line)]
    assert [args.strip() for args in installs] == ["-r requirements.txt", "--no-deps ."], installs
    assert any("['project']['dependencies']" in line and "optional" not in line for line in steps)
    # The image's user is the one docker-compose.yml states for every mlscope service.
    services = compose_yaml()["services"]
    assert {services[name]["user"] for name in MLSCOPE_SERVICES} == {f"{APP_UID}:{APP_UID}"}


def test_no_secret_values_are_committed() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO)
    assert ignored.returncode == 0, ".env must be ignored by git"
    tracked = subprocess.run(["git", "ls-files", "--", ".env"], cwd=REPO, capture_output=True, text=True)
    assert tracked.stdout.strip() == "", ".env is tracked"
    assert ".env" in DOCKERIGNORE.read_text().split(), ".env must stay out of the build context"

    secret_names = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY\b")
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_LINE.match(line)
        if match and secret_names.search(match.group(2)):
            assert match.group(3) in {"", "change-me"}, f".env.example holds a real value: {line}"
    # The password only ever appears as the mandatory interpolation, never as a value.
    mandatory = f"${{POSTGRES_PASSWORD:?{PASSWORD_MESSAGE}}}"
    uses = [match.group(0) for match in interpolations() if match.group(1) == "POSTGRES_PASSWORD"]
    assert uses and set(uses) == {mandatory}, uses
    assert compose_yaml()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == mandatory
    for name, service in compose_yaml()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secret_names.search(key):
                assert value is None or str(value).startswith("${"), f"{name}: {key} has a literal value"
    for line in DOCKERFILE.read_text().splitlines():
        if line.strip().upper().startswith(("ENV ", "ARG ")):
            assert not secret_names.search(line), f"Dockerfile bakes in a secret: {line}"


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = compose_yaml()["services"]
    for name, service in services.items():
        if str(service.get("restart", "no")) == "no":
            continue
        assert name in LONG_RUNNING, name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"
    assert set(LONG_RUNNING) <= {n for n, s in services.items() if "healthcheck" in s}
    # Each HTTP health check calls the port its own command listens on (the slim image has no curl).
    listening = {"mlflow": "5000", "dashboard": "8000", "api": "8001"}
    for name, port in listening.items():
        command, test = services[name]["command"], services[name]["healthcheck"]["test"]
        assert option(command, "--port") == port, name
        assert test[:3] == ["CMD", "python", "-c"] and f"http://127.0.0.1:{port}/health" in test[3], name
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_every_compose_variable_is_documented_in_env_example() -> None:
    documented: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_LINE.match(line)
        if match:
            documented[match.group(2)] = None if match.group(1) else match.group(3)
    used = compose_variables()
    assert used - set(documented) == set(), "used in docker-compose.yml, missing from .env.example"
    assert set(documented) - used == set(), "in .env.example, unused by docker-compose.yml"
    # A default written in docker-compose.yml is the value .env.example shows.
    for match in interpolations():
        name, kind, default = match.groups()
        if kind == ":-":
            assert documented[name] == default, (name, default, documented[name])


def test_env_example_defaults_match_mlscope_settings() -> None:
    """The mlscope values .env.example shows are the defaults mlscope itself has."""
    from mlscope.config import Settings

    fields = Settings.model_fields
    for key, value in example_env().items():
        field = key.removeprefix("MLSCOPE_").lower()
        if not key.startswith("MLSCOPE_") or field not in fields:
            continue
        if fields[field].default_factory is not None or fields[field].default is None:
            continue  # computed (the OS user) or unset by default
        parsed = getattr(Settings.model_validate({field: value}), field)
        assert parsed == fields[field].default, (key, value, fields[field].default)


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    entries = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for required in (".venv", ".git", "test-output", "mlflow.db", "mlruns", "mlartifacts", "bench/out",
                     "**/__pycache__", ".env"):
        assert required in entries, required
    for needed in ("pyproject.toml", "README.md", "src"):
        assert needed not in entries, needed
