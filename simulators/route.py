"""Where a simulated truck is: a route of timed waypoints, driven at constant speed in between.

A logger on an asset with a route reports `lat`, `lon` (WGS-84 degrees, 6 decimals, about 0.1 m)
and `speed_kmh` with each reading, so geofences can start and stop its leg. Before the first
waypoint the truck waits at it, after the last it stays there.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Waypoint:
    t_s: float
    lat: float
    lon: float


class Route:
    def __init__(self, waypoints: Sequence[Waypoint]) -> None:
        if not waypoints:
            raise ValueError("a route needs at least one waypoint")
        self.points = sorted(waypoints, key=lambda w: w.t_s)
        self._times = [w.t_s for w in self.points]

    def at(self, t_s: float) -> tuple[float, float, float]:
        """(lat, lon, speed km/h) at simulated second t_s."""
        pts = self.points
        i = bisect.bisect_right(self._times, t_s)
        if i == 0:
            return pts[0].lat, pts[0].lon, 0.0
        if i == len(pts):
            return pts[-1].lat, pts[-1].lon, 0.0
        a, b = pts[i - 1], pts[i]
        span = b.t_s - a.t_s
        f = (t_s - a.t_s) / span if span > 0 else 1.0
        lat = a.lat + (b.lat - a.lat) * f
        lon = a.lon + (b.lon - a.lon) * f
        speed = distance_m(a.lat, a.lon, b.lat, b.lon) / span * 3.6 if span > 0 else 0.0
        return round(lat, 6), round(lon, 6), round(speed, 1)
