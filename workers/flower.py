"""Flower, started with basic auth and with its Prometheus /metrics behind that auth too.

Flower 2.2 serves /metrics to anyone even with --basic-auth set; worker names, task names and
rates are not for the world. `metrics_protect()` puts the same basic auth in front of it
(/healthcheck stays open for load balancers).
"""

from __future__ import annotations

import tornado.web


def metrics_protect() -> None:
    """Require Flower's configured authentication on /metrics."""
    from flower.views.monitor import Metrics

    if not getattr(Metrics.get, "_racefree_protected", False):
        protected = tornado.web.authenticated(Metrics.get)
        protected._racefree_protected = True
        Metrics.get = protected
