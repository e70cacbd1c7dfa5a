"""One run: its details, and its artifact files served so that none can run as a page of this origin."""

# No `from __future__ import annotations`: FastAPI resolves the Annotated parameters at runtime.
import shutil
from typing import Annotated

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.types import Receive, Scope, Send

from mlscope.tracking.run_detail import ArtifactFile, RunDetail, fetch_artifact, run_detail
from mlscope.web.context import Web

router = APIRouter(prefix="/api", tags=["run"])

# Served artifacts get their own policy: even a file a browser would render runs nothing and loads nothing.
ARTIFACT_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


class ArtifactResponse(FileResponse):
    """A downloaded artifact, streamed; its temporary folder is removed however the response ends."""

    def __init__(self, found: ArtifactFile) -> None:
        super().__init__(found.local_path, media_type=found.media_type, filename=found.name,
                         content_disposition_type="inline" if found.inline else "attachment",
                         headers={"Content-Security-Policy": ARTIFACT_POLICY, "Cache-Control": "private, no-cache"})
        self.folder = found.folder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(self.folder, ignore_errors=True))


@router.get("/runs/{run_id}", response_model=RunDetail)
def run(web: Web, run_id: str) -> RunDetail:
    """A run's info, params, metrics, tags, artifact tree, logged model signature and registry versions."""
    return run_detail(web.client, web.settings, run_id)


@router.get("/runs/{run_id}/artifacts/{artifact_path:path}", response_class=FileResponse,
            responses={200: {"description": "The artifact file.", "content": {"application/octet-stream": {}}}})
def artifact(web: Web, run_id: str, artifact_path: str,
             download: Annotated[bool, Query(description="Always send as an attachment.")] = False
             ) -> ArtifactResponse:
    """One file of the run's artifacts. Images, JSON and plain text are shown inline; anything else
    (HTML, SVG, scripts...) is always an `application/octet-stream` attachment."""
    return ArtifactResponse(fetch_artifact(web.client, web.settings, run_id, artifact_path, download=download))
