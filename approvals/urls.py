"""The approval queue pages (server-rendered): /approvals/, one item, and the vote form's target."""

from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("<uuid:approval_id>/", views.detail, name="detail"),
    path("<uuid:approval_id>/vote", views.vote, name="vote"),
]
