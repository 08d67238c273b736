"""REST API routes, mounted at /api/ (see the OpenAPI schema at /api/schema/)."""

from django.urls import path

from apps.chat import apis

urlpatterns = [
    path("conversations/", apis.ConversationListApi.as_view(), name="conversation-list"),
    path("conversations/<uuid:conversation_id>/", apis.ConversationDetailApi.as_view(), name="conversation-detail"),
    path(
        "conversations/<uuid:conversation_id>/handoff/",
        apis.ConversationHandoffApi.as_view(),
        name="conversation-handoff",
    ),
    path("messages/<int:message_id>/feedback/", apis.MessageFeedbackApi.as_view(), name="message-feedback"),
]
