"""HTTP endpoints for the labeling queue, labels and exports, mounted at /api/labeling/ (webapp/fleet/api.py).

Every operation here needs an entry in tests/labeling/api_permissions.py (the permission matrix).
"""

from __future__ import annotations

from ninja import Router

router = Router(tags=["labeling"])
