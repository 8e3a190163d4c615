"""How clients outside the cluster reach the platform."""

from __future__ import annotations

from enum import StrEnum


class Exposure(StrEnum):
    INGRESS = "ingress"
    NODE_PORT = "nodePort"
    LOAD_BALANCER = "loadBalancer"
