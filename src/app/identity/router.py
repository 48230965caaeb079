"""Authentication (/v1/auth) and user management (/v1/users)."""

from __future__ import annotations

from fastapi import APIRouter

auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])
