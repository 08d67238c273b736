"""The agents' inbox at /inbox/ (apps/inbox/views.py)."""

from django.urls import path

from apps.inbox import views

app_name = "inbox"

urlpatterns = [
    path("", views.inbox_page, name="page"),
    path("queue/", views.queue_fragment, name="queue"),
    path("c/<uuid:conversation_id>/", views.conversation_page, name="conversation"),
    path("c/<uuid:conversation_id>/pane/", views.conversation_fragment, name="pane"),
    path("c/<uuid:conversation_id>/claim/", views.claim, name="claim"),
    path("c/<uuid:conversation_id>/assign/", views.assign, name="assign"),
    path("c/<uuid:conversation_id>/reply/", views.reply, name="reply"),
    path("c/<uuid:conversation_id>/note/", views.note, name="note"),
    path("c/<uuid:conversation_id>/hand-back/", views.hand_back, name="hand_back"),
    path("c/<uuid:conversation_id>/resolve/", views.resolve, name="resolve"),
    path("c/<uuid:conversation_id>/suggest/", views.suggest, name="suggest"),
]
