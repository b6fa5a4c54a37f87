"""HTTP endpoints for the KPIs and dashboard data, mounted at /api/dashboard/ (webapp/fleet/api.py).

Every operation here needs an entry in tests/dashboard/api_permissions.py (the permission matrix).
"""

from __future__ import annotations

from ninja import Router

router = Router(tags=["dashboard"])
