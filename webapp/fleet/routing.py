from django.urls import path

from webapp.fleet.consumers import FleetConsumer, RobotConsumer

websocket_urlpatterns = [
    path("ws/robot/", RobotConsumer.as_asgi()),
    path("ws/fleet/", FleetConsumer.as_asgi()),
]
