"""Every router of the lead API, in the order the app includes them."""

from __future__ import annotations

from fastapi import APIRouter

from server.routes.activities import router as activities_router
from server.routes.auth_routes import router as auth_router
from server.routes.blocks import router as blocks_router
from server.routes.calls import router as calls_router
from server.routes.changes import router as changes_router
from server.routes.floor import router as floor_router
from server.routes.intake import router as intake_router
from server.routes.leads import router as leads_router
from server.routes.manager import router as manager_router
from server.routes.messages import router as messages_router
from server.routes.rules_routes import router as rules_router
from server.routes.snapshot import router as snapshot_router

ROUTERS: list[APIRouter] = [
    auth_router,
    intake_router,
    leads_router,
    activities_router,
    changes_router,
    snapshot_router,
    blocks_router,
    messages_router,
    floor_router,
    rules_router,
    calls_router,
    manager_router,
]
