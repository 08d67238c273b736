from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("apps.accounts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/knowledge/", include("apps.knowledge.api_urls")),
    path("api/", include("apps.chat.api_urls")),
    path("inbox/", include("apps.inbox.urls")),
    path("", include("apps.core.urls")),
    path("", include("apps.widget.urls")),
    path("", include("apps.chat.urls")),
]
