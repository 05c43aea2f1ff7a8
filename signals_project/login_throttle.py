"""The authentication backend that throttles brute-force logins (django-axes).

Why a subclass: axes' backend refuses to authenticate without a request, but some
callers legitimately have none (the test client's `login()`, shell sessions,
management commands). Those never come from the network, so there is nothing to
throttle: they fall through to the next backend. Every login over HTTP (the login
page, the admin, the browsable API) carries a request and is counted.
"""
from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
