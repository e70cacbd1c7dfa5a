"""(being built) The registry view's JSON API."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["registry"])
