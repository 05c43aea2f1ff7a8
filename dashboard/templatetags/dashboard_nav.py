"""The top bar's page links. Pages served by other apps (webhooks, subscriptions)
are linked only once their URL exists, so the bar never points at a 404."""
from __future__ import annotations

from django import template
from django.urls import Resolver404, resolve

register = template.Library()

# (path, label); the dashboard itself is always there.
NAV_PAGES = (("/", "Feed"), ("/webhooks/", "Webhooks"), ("/subscriptions/", "Subscriptions"))


@register.simple_tag(takes_context=True)
def nav_links(context) -> list[dict[str, object]]:
    """[{url, label, current}] for the pages this deployment serves."""
    request = context.get("request")
    here = request.path if request is not None else ""
    links = []
    for path, label in NAV_PAGES:
        try:
            resolve(path)
        except Resolver404:
            continue
        links.append({"url": path, "label": label, "current": here == path})
    return links
