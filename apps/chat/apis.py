"""REST API over conversations (session auth): history, transcripts, feedback and human handoff.

Each view parses input, calls one selector or service, and shapes the output. Another user's objects
are 404 through `conversation_get_for_user` / `message_get_for_user`.
"""

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.chat import selectors, services
from apps.chat.models import Conversation, Feedback, Message


class ConversationSummarySerializer(serializers.ModelSerializer):
    message_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Conversation
        fields = ["id", "title", "status", "created_at", "updated_at", "message_count"]


class MessageSerializer(serializers.ModelSerializer):
    feedback = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "text",
            "status",
            "client_id",
            "model",
            "prompt_version",
            "created_at",
            "feedback",
            "citations",
        ]

    def get_feedback(self, message: Message) -> str | None:
        feedback = getattr(message, "feedback", None)
        return feedback.rating if feedback is not None else None


class ConversationDetailSerializer(serializers.ModelSerializer):
    messages = MessageSerializer(many=True, read_only=True)
    ticket_id = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = ["id", "title", "status", "created_at", "updated_at", "ticket_id", "messages"]

    def get_ticket_id(self, conversation: Conversation) -> int | None:
        """The handoff ticket, if the user asked for a human."""
        return selectors.conversation_ticket_id(conversation.id, source="handoff")


class FeedbackInputSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=Feedback.Rating.choices)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class FeedbackSerializer(serializers.ModelSerializer):
    message_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Feedback
        fields = ["message_id", "rating", "comment", "created_at", "updated_at"]


class HandoffSerializer(serializers.Serializer):
    ticket_id = serializers.IntegerField()
    conversation_status = serializers.CharField()


class ConversationListApi(generics.ListAPIView):
    """The user's conversations that have messages, most recent first (paginated)."""

    serializer_class = ConversationSummarySerializer

    def get_queryset(self) -> QuerySet[Conversation]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Conversation.objects.none()
        return selectors.conversation_list_for_user(self.request.user)


class ConversationDetailApi(APIView):
    @extend_schema(responses={200: ConversationDetailSerializer, 404: OpenApiResponse(description="Not yours.")})
    def get(self, request: Request, conversation_id: UUID) -> Response:
        """One conversation with its messages (and the rating left on each answer)."""
        conversation = selectors.conversation_get_for_user(request.user, conversation_id)
        conversation = selectors.conversation_with_messages(conversation)
        return Response(ConversationDetailSerializer(conversation).data)


class MessageFeedbackApi(APIView):
    @extend_schema(
        request=FeedbackInputSerializer,
        responses={200: FeedbackSerializer, 400: OpenApiResponse(description="Not a finished answer.")},
    )
    def put(self, request: Request, message_id: int) -> Response:
        """Rate an assistant answer up or down, with an optional comment; a second call changes it."""
        payload = FeedbackInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        message = selectors.message_get_for_user(request.user, message_id)
        feedback = services.feedback_leave(user=request.user, message=message, **payload.validated_data)
        return Response(FeedbackSerializer(feedback).data)

    @extend_schema(
        request=FeedbackInputSerializer,
        responses={200: FeedbackSerializer, 400: OpenApiResponse(description="Not a finished answer.")},
    )
    def post(self, request: Request, message_id: int) -> Response:
        """Same as PUT (for clients that only POST)."""
        return self.put(request, message_id)


class ConversationHandoffApi(APIView):
    @extend_schema(request=None, responses={201: HandoffSerializer})
    def post(self, request: Request, conversation_id: UUID) -> Response:
        """Ask for a human: opens (or reuses) a ticket with the transcript; the conversation needs a human."""
        conversation = selectors.conversation_get_for_user(request.user, conversation_id)
        ticket = services.conversation_handoff(user=request.user, conversation=conversation)
        body: dict[str, Any] = {"ticket_id": ticket.pk, "conversation_status": conversation.status}
        return Response(HandoffSerializer(body).data, status=status.HTTP_201_CREATED)
