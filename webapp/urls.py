from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from webapp.api import api
from webapp.fleet.health import healthz

urlpatterns = [
    path("", include("webapp.dashboard.urls")),
    path("labeling/", include("webapp.labeling.urls")),
    path("policies/", include("webapp.learning.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("healthz", healthz, name="healthz"),
]
