"""The loader script at /widget/<key>.js and the chat frame at /widget/<key>/frame/."""

from django.urls import path

from apps.widget import views

app_name = "widget"

urlpatterns = [
    path("widget/<str:key>.js", views.loader_script, name="loader"),
    path("widget/<str:key>/frame/", views.chat_frame, name="frame"),
]
