"""Every router of the lead API. A new router module is added to ROUTERS here."""

from __future__ import annotations

from fastapi import APIRouter

from server.routes.auth_routes import router as auth_router

ROUTERS: list[APIRouter] = [auth_router]
