"""(being built) The explain view's JSON API."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["explain"])
