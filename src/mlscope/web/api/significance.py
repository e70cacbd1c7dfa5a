"""(being built) The significance view's JSON API."""

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["compare"])
