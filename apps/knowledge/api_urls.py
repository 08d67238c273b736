"""Knowledge REST routes, mounted at /api/knowledge/ (documented in the OpenAPI schema)."""

from django.urls import path

from apps.knowledge import apis

urlpatterns = [
    path("articles/", apis.ArticleListApi.as_view(), name="knowledge-article-list"),
    path("articles/<int:article_id>/", apis.ArticleDetailApi.as_view(), name="knowledge-article-detail"),
    path("articles/<int:article_id>/publish/", apis.ArticlePublishApi.as_view(), name="knowledge-article-publish"),
    path(
        "articles/<int:article_id>/unpublish/", apis.ArticleUnpublishApi.as_view(), name="knowledge-article-unpublish"
    ),
    path("search/", apis.ArticleSearchApi.as_view(), name="knowledge-search"),
]
