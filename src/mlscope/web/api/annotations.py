"""A run's note (its Markdown description, the one MLflow's UI shows) and user tags, changed from the run page.

Same shape as the registry's alias routes: POST to the collection sets or replaces, POST `.../remove` removes,
and the tag key travels in the JSON body (as in MLflow's own `runs/set-tag` and `runs/delete-tag`), because
MLflow keys may hold '/', '.', ':' and spaces that a URL path would split, decode or collapse."""

# No `from __future__ import annotations`: FastAPI resolves the Annotated parameters at runtime.
from fastapi import APIRouter
from pydantic import BaseModel, Field

from mlscope import safe_markdown
from mlscope.errors import BadInput
from mlscope.tracking.annotations import MAX_VALUE_LENGTH, RunAnnotations, remove_tag, set_note, set_tag
from mlscope.web.context import Mutation, Web

router = APIRouter(prefix="/api", tags=["run"])


class NoteRequest(BaseModel):
    content: str = Field(description="The note in Markdown (at most 8,000 characters); blank removes it.",
                         examples=["## Baseline\nTrained on the **full** training split."])


class TagRequest(BaseModel):
    key: str = Field(description="Tag key: letters, digits, '_', '-', '.', ' ', ':', '/'; not `mlflow.*` or "
                                 "`mlscope.*`.", examples=["owner"])
    value: str = Field(description="Tag value (at most 8,000 characters).", examples=["data-team"])


class TagKey(BaseModel):
    key: str = Field(description="Key of the tag to remove.", examples=["owner"])


class MarkdownRequest(BaseModel):
    content: str = Field(description="Markdown to render.", examples=["**bold** and a [link](https://mlflow.org)"])


class MarkdownView(BaseModel):
    html: str


@router.post("/runs/{run_id}/note", response_model=RunAnnotations, dependencies=[Mutation])
def note(web: Web, run_id: str, body: NoteRequest) -> RunAnnotations:
    """Set or replace the run's note (`mlflow.note.content`, the description in MLflow's UI)."""
    return set_note(web.client, run_id, body.content)


@router.post("/runs/{run_id}/tags", response_model=RunAnnotations, dependencies=[Mutation])
def tag(web: Web, run_id: str, body: TagRequest) -> RunAnnotations:
    """Add a tag to the run or change its value."""
    return set_tag(web.client, run_id, body.key, body.value)


@router.post("/runs/{run_id}/tags/remove", response_model=RunAnnotations, dependencies=[Mutation])
def untag(web: Web, run_id: str, body: TagKey) -> RunAnnotations:
    """Remove a tag from the run."""
    return remove_tag(web.client, run_id, body.key)


@router.post("/markdown", response_model=MarkdownView)
def markdown(body: MarkdownRequest) -> MarkdownView:
    """Render Markdown exactly as a run's note is shown (the editor's preview); nothing is stored."""
    if len(body.content) > MAX_VALUE_LENGTH:
        raise BadInput(f"content is longer than {MAX_VALUE_LENGTH} characters (MLflow's limit for a tag value)",
                       field="content")
    return MarkdownView(html=safe_markdown.render(body.content))
