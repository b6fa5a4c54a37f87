from django.urls import path

from webapp.learning import views

urlpatterns = [
    path("", views.policies, name="policies"),
]
