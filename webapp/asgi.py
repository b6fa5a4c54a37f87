"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()

# Channels' auth and the consumers import models: Django must be set up first.
from channels.auth import AuthMiddlewareStack  # noqa: E402 - after Django's setup
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - after Django's setup

from webapp.fleet.routing import websocket_urlpatterns  # noqa: E402 - after Django's setup

# Origin is checked inside FleetConsumer (close 4403), so robots (no Origin) and browsers share one router.
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
