"""(being built) The run view's JSON API."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["run"])
