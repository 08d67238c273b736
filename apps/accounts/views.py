"""Login with per-IP and per-username attempt limits (shared through Redis when configured)."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse

from apps.accounts.demo import DEMO_PASSWORD
from apps.accounts.selectors import demo_logins_list
from apps.core.ratelimit import rate_limit_hit


def client_ip(request: HttpRequest) -> str:
    """The peer address. Behind a proxy, uvicorn's proxy-headers support has already rewritten it."""
    return request.META.get("REMOTE_ADDR", "unknown")


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        context["demo_logins"] = demo_logins_list()
        context["demo_password"] = DEMO_PASSWORD
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        limit = settings.LOGIN_RATE_LIMIT_PER_MINUTE
        username = request.POST.get("username", "")[:150].lower()
        over_ip = rate_limit_hit(key=f"login:ip:{client_ip(request)}", limit=limit)
        over_user = bool(username) and rate_limit_hit(key=f"login:user:{username}", limit=limit)
        if over_ip or over_user:
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, "Too many login attempts. Wait a minute and try again.")
            response = self.render_to_response(self.get_context_data(form=form))
            response.status_code = 429
            response["Retry-After"] = "60"
            return response
        return super().post(request, *args, **kwargs)
