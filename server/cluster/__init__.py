"""This server as a member of its cluster: liveness and catching up, the bus, and the watched pickup directories."""

from __future__ import annotations

from ._pickup_batch import PickupHost
from .bus import Ack, Bus, HttpBus, RedisBus
from .member import ClusterMember
from .pickup import Pickup

__all__ = ["Ack", "Bus", "ClusterMember", "HttpBus", "Pickup", "PickupHost", "RedisBus"]
