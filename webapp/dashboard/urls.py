"""Dashboard pages: fleet, robot, KPIs, audit (the dashboard issue)."""

from django.urls import path

from webapp.dashboard import views

urlpatterns = [
    path("", views.fleet, name="fleet"),
]
