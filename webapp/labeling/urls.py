"""Labeling queue and clip review pages."""

from django.urls import path

from webapp.labeling import views

urlpatterns = [
    path("", views.queue, name="labeling_queue"),
    path("episodes/<uuid:episode_id>/", views.episode, name="labeling_episode"),
]
