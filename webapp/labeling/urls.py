"""Labeling queue, clip review and dataset export pages (the labeling issue)."""

from django.urls import path

urlpatterns: list = []
