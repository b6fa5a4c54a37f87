"""Dashboard pages: fleet, robot, KPIs, audit."""

from django.urls import path

from webapp.dashboard import views

urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("robots/<slug:name>/", views.robot, name="robot"),
    path("kpis/", views.kpis, name="kpis"),
    path("audit/", views.audit, name="audit"),
    path("setup/", views.setup, name="setup"),
]
