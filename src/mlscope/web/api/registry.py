"""The Model Registry: registered models, versions, the alias audit trail, and alias changes (promotion)."""

# No `from __future__ import annotations`: FastAPI resolves the Annotated parameters at runtime.
from fastapi import APIRouter
from pydantic import BaseModel, Field

from mlscope.tracking.registry_view import (AliasChange, AliasHistory, ModelDetail, ModelList, alias_history,
                                            drop_alias, model_detail, model_list, point_alias)
from mlscope.web.context import Mutation, Web

router = APIRouter(prefix="/api", tags=["registry"])


class AliasRequest(BaseModel):
    alias: str = Field(description="Alias to set or move, e.g. `production`.", examples=["production"])
    version: str | int = Field(description="Version that receives the alias.", examples=["3"])
    reason: str = Field(description="Why (recorded in the audit trail; at most 500 characters).",
                        examples=["better AUC"])


class RemoveRequest(BaseModel):
    reason: str = Field(description="Why (recorded in the audit trail; at most 500 characters).")


@router.get("/models", response_model=ModelList)
def models(web: Web) -> ModelList:
    """Every registered model: version count, latest version, aliases, last update."""
    return model_list(web.client)


@router.get("/models/{name}", response_model=ModelDetail)
def model(web: Web, name: str) -> ModelDetail:
    """A model's versions (newest first) with source runs and headline metrics, and its current aliases."""
    return model_detail(web.client, web.index, name)


@router.get("/models/{name}/history", response_model=AliasHistory)
def history(web: Web, name: str) -> AliasHistory:
    """The alias audit trail, newest first: who moved which alias from which version to which, and why."""
    return alias_history(web.client, name)


@router.post("/models/{name}/aliases", response_model=AliasChange, dependencies=[Mutation])
def set_alias(web: Web, name: str, body: AliasRequest) -> AliasChange:
    """Set an alias on a version, or move it there; recorded with the dashboard user and the reason."""
    return point_alias(web.client, name, body.alias, str(body.version), by=web.settings.user, reason=body.reason)


@router.post("/models/{name}/aliases/{alias}/remove", response_model=AliasChange, dependencies=[Mutation])
def remove_alias(web: Web, name: str, alias: str, body: RemoveRequest) -> AliasChange:
    """Remove an alias; recorded with the dashboard user and the reason."""
    return drop_alias(web.client, name, alias, by=web.settings.user, reason=body.reason)
