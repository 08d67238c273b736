"""Staff REST API over articles (token or session auth), so a help centre can sync its articles.

Each view parses input, calls one selector or service and shapes the output; validation errors come
from `services.check_article_fields` as `{"code": "invalid_article", "errors": {field: message}}`.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApplicationError
from apps.knowledge import search, selectors, services
from apps.knowledge.models import Article, Language


class ArticleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Article
        fields = [
            "id",
            "title",
            "body",
            "url",
            "language",
            "tags",
            "status",
            "external_id",
            "created_at",
            "updated_at",
            "published_at",
        ]
        read_only_fields = fields


class ArticleInputSerializer(serializers.Serializer):
    """Documents the input; the checks themselves live in `services.check_article_fields`."""

    title = serializers.CharField(max_length=200)
    body = serializers.CharField(help_text="Markdown.")
    url = serializers.URLField(required=False, allow_blank=True, max_length=500)
    language = serializers.ChoiceField(choices=Language.choices, required=False, default=Language.ENGLISH)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    status = serializers.ChoiceField(choices=Article.Status.choices, required=False, default=Article.Status.DRAFT)
    external_id = serializers.CharField(required=False, allow_blank=True, max_length=200)


class SearchHitSerializer(serializers.Serializer):
    article_id = serializers.IntegerField()
    title = serializers.CharField()
    url = serializers.CharField()
    language = serializers.CharField()
    score = serializers.FloatField()


class StaffApi:
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAdminUser]


def _fields(request: Request) -> dict:
    if not isinstance(request.data, dict):
        raise ApplicationError("Send a JSON object.", code="invalid_article", extra={"errors": {}})
    return dict(request.data)


@extend_schema(tags=["knowledge"])
class ArticleListApi(StaffApi, generics.ListAPIView):
    """Articles, most recently edited first (paginated); filter by status, language, tag."""

    serializer_class = ArticleSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=Article.Status.values),
            OpenApiParameter("language", enum=Language.values),
            OpenApiParameter("tag", str),
        ]
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Article]:
        params = self.request.query_params
        return selectors.article_list(
            status=params.get("status", ""), language=params.get("language", ""), tag=params.get("tag", "")
        )

    @extend_schema(
        request=ArticleInputSerializer,
        responses={201: ArticleSerializer, 400: OpenApiResponse(description="Invalid article.")},
    )
    def post(self, request: Request) -> Response:
        article = services.article_create(actor=request.user, **_fields(request))
        return Response(ArticleSerializer(article).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["knowledge"])
class ArticleDetailApi(StaffApi, APIView):
    @extend_schema(responses={200: ArticleSerializer, 404: OpenApiResponse(description="No such article.")})
    def get(self, request: Request, article_id: int) -> Response:
        return Response(ArticleSerializer(selectors.article_get(article_id)).data)

    @extend_schema(
        request=ArticleInputSerializer(partial=True),
        responses={200: ArticleSerializer, 400: OpenApiResponse(description="Invalid article."), 404: None},
    )
    def patch(self, request: Request, article_id: int) -> Response:
        article = selectors.article_get(article_id)
        article = services.article_update(article=article, actor=request.user, **_fields(request))
        return Response(ArticleSerializer(article).data)

    @extend_schema(responses={204: None, 404: OpenApiResponse(description="No such article.")})
    def delete(self, request: Request, article_id: int) -> Response:
        services.article_delete(article=selectors.article_get(article_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["knowledge"])
class ArticlePublishApi(StaffApi, APIView):
    """Publish the article: it reaches the assistant through a new knowledge snapshot."""

    @extend_schema(request=None, responses={200: ArticleSerializer, 404: None})
    def post(self, request: Request, article_id: int) -> Response:
        article = services.article_publish(article=selectors.article_get(article_id), actor=request.user)
        return Response(ArticleSerializer(article).data)


@extend_schema(tags=["knowledge"])
class ArticleUnpublishApi(StaffApi, APIView):
    @extend_schema(request=None, responses={200: ArticleSerializer, 404: None})
    def post(self, request: Request, article_id: int) -> Response:
        article = services.article_unpublish(article=selectors.article_get(article_id), actor=request.user)
        return Response(ArticleSerializer(article).data)


@extend_schema(tags=["knowledge"])
class ArticleSearchApi(StaffApi, APIView):
    """What retrieval would hand the assistant for a question (published articles only)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True),
            OpenApiParameter("language", enum=Language.values),
            OpenApiParameter("limit", int),
        ],
        responses={200: SearchHitSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", "5")), 1), 50)
        except ValueError:
            limit = 5
        hits = search.search(params.get("q", ""), params.get("language", "en"), limit)
        return Response(SearchHitSerializer(hits, many=True).data)
