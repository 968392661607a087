from django.urls import path

from controlplane.dashboard import access

app_name = "accounts"
urlpatterns = [
    path("", access.access_page, name="access"),
    path("members", access.member_set, name="member-set"),
    path("invitations", access.invite, name="invite"),
    path("tokens", access.token_create, name="token-create"),
    path("tokens/<int:token_id>/revoke", access.token_revoke, name="token-revoke"),
]
