"""The agents' inbox at /inbox/ (apps/inbox/views.py)."""

from django.urls import path

from apps.inbox import views

app_name = "inbox"

urlpatterns = [
    path("", views.inbox_page, name="page"),
    path("queue/", views.queue_fragment, name="queue"),
    path("c/<str:conversation_id>/", views.conversation_page, name="conversation"),
    path("c/<str:conversation_id>/pane/", views.conversation_fragment, name="pane"),
    path("c/<str:conversation_id>/claim/", views.claim, name="claim"),
    path("c/<str:conversation_id>/assign/", views.assign, name="assign"),
    path("c/<str:conversation_id>/reply/", views.reply, name="reply"),
    path("c/<str:conversation_id>/note/", views.note, name="note"),
    path("c/<str:conversation_id>/hand-back/", views.hand_back, name="hand_back"),
    path("c/<str:conversation_id>/resolve/", views.resolve, name="resolve"),
    path("c/<str:conversation_id>/suggest/", views.suggest, name="suggest"),
]
