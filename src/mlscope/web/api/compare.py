"""(being built) The compare view's JSON API."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["compare"])
