"""What people write on a run: its note (the description MLflow's UI shows and edits, the
`mlflow.note.content` tag) and its user tags, checked against MLflow's own rules before anything is written.
System tags (`mlflow.*`, except the note) and mlscope's own (`mlscope.*`) are read-only here: MLflow and
mlscope read them back (run name, parent run, logged-model history, the task, the training session), so
changing them by hand would break the run."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping

from mlflow.entities import LifecycleStage, Run
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from mlscope import safe_markdown
from mlscope.errors import BadInput, Conflict, NotFound
from mlscope.tracking.runs import get_run

NOTE_TAG = "mlflow.note.content"
SYSTEM_PREFIX = "mlflow."
MLSCOPE_PREFIX = "mlscope."
MAX_KEY_LENGTH = 250  # MLflow's MAX_ENTITY_KEY_LENGTH
MAX_VALUE_LENGTH = 8000  # MLflow's MAX_TAG_VAL_LENGTH; MLflow would silently cut a longer value
# MLflow's tag-name rule (outside Windows): letters, digits, '_', '-', '.', ' ', ':' and '/'.
_KEY = re.compile(r"[/\w.\- :]*")


class NoteView(BaseModel):
    content: str
    html: str


class RunAnnotations(BaseModel):
    """A run's note (None when it has none), its tags and which of them the dashboard may not change."""

    run_id: str
    note: NoteView | None
    tags: dict[str, str]
    system_tags: dict[str, str]
    read_only_tags: list[str]


def note_view(tags: Mapping[str, str]) -> NoteView | None:
    content = tags.get(NOTE_TAG)
    if not content or not content.strip():
        return None
    return NoteView(content=content, html=safe_markdown.render(content))


def read_only_tags(keys: Iterable[str]) -> list[str]:
    """The keys among a run's (non-system) tags that the dashboard shows but does not let anyone change."""
    return sorted(key for key in keys if key.startswith(MLSCOPE_PREFIX))


def annotations(run: Run) -> RunAnnotations:
    tags = dict(sorted(run.data.tags.items()))
    user = {key: value for key, value in tags.items() if not key.startswith(SYSTEM_PREFIX)}
    return RunAnnotations(run_id=run.info.run_id, note=note_view(tags), tags=user,
                          system_tags={key: value for key, value in tags.items() if key.startswith(SYSTEM_PREFIX)},
                          read_only_tags=read_only_tags(user))


def check_key(key: str) -> str:
    """A tag key MLflow accepts and the dashboard may change, or BadInput naming `key`."""
    if not key.strip():
        raise BadInput("tag key is empty", field="key")
    if len(key) > MAX_KEY_LENGTH:
        raise BadInput(f"tag key is longer than {MAX_KEY_LENGTH} characters (MLflow's limit)", field="key")
    if not _KEY.fullmatch(key):
        raise BadInput(f"tag key '{key}' has a character MLflow refuses: use letters, digits, '_', '-', '.', "
                       "' ', ':' and '/'", field="key")
    normal = posixpath.normpath(key)
    if normal != key or normal == "." or normal.startswith(("..", "/")):
        raise BadInput(f"tag key '{key}' is refused by MLflow, which treats keys as file paths: no leading or "
                       "trailing '/', no '//', and no '.' or '..' parts", field="key")
    if key == NOTE_TAG:
        raise BadInput(f"'{NOTE_TAG}' is the run's note: edit it as the note", field="key")
    if key.startswith(SYSTEM_PREFIX):
        raise BadInput(f"tag '{key}' is an MLflow system tag and read-only here: MLflow relies on it (run name, "
                       "parent run, source, logged models)", field="key")
    if key.startswith(MLSCOPE_PREFIX):
        raise BadInput(f"tag '{key}' is set by mlscope and read-only here: mlscope reads it back (task, "
                       "training session, errors)", field="key")
    return key


def check_value(value: str, field: str = "value") -> str:
    if len(value) > MAX_VALUE_LENGTH:
        raise BadInput(f"{field} is longer than {MAX_VALUE_LENGTH} characters (MLflow's limit for a tag value)",
                       field=field)
    if "\x00" in value:
        raise BadInput(f"{field} contains a NUL character", field=field)
    return value


def editable_run(client: MlflowClient, run_id: str) -> Run:
    """The run, when it exists and is not deleted (MLflow refuses to change a deleted run's tags)."""
    run = get_run(client, run_id)
    if run.info.lifecycle_stage == LifecycleStage.DELETED:
        raise Conflict(f"run '{run_id}' is deleted: restore it in MLflow before changing its note or tags",
                       field="run_id")
    return run


def set_note(client: MlflowClient, run_id: str, content: str) -> RunAnnotations:
    """Write the run's note (Markdown); blank content removes it."""
    run = editable_run(client, run_id)
    check_value(content, "content")
    if content.strip():
        client.set_tag(run_id, NOTE_TAG, content)
    elif NOTE_TAG in run.data.tags:
        client.delete_tag(run_id, NOTE_TAG)
    return annotations(client.get_run(run_id))


def set_tag(client: MlflowClient, run_id: str, key: str, value: str) -> RunAnnotations:
    """Add the user tag `key`, or change its value."""
    editable_run(client, run_id)
    check_key(key)
    check_value(value)
    client.set_tag(run_id, key, value)
    return annotations(client.get_run(run_id))


def remove_tag(client: MlflowClient, run_id: str, key: str) -> RunAnnotations:
    """Delete the user tag `key`."""
    run = editable_run(client, run_id)
    check_key(key)
    if key not in run.data.tags:
        raise NotFound(f"run '{run_id}' has no tag '{key}'", field="key")
    client.delete_tag(run_id, key)
    return annotations(client.get_run(run_id))

