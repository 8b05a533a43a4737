"""Geofences of sites, and the stages of a transport leg they drive.

A site (warehouse, cross-dock, hospital) may have a geofence: a circle (centre and radius in
metres) or a polygon of [lat, lon] corners (WGS-84 degrees, as the loggers' GPS reports them).
A transport leg with `geofence: true` follows its truck's positions (fields `lat`, `lon` of its
readings, in event time):

* origin — inside the origin site's fence;
* transit — outside both fences: the first such reading after the truck was seen at the origin
  starts a planned leg, at that reading's time;
* destination — inside the destination site's fence: the first such reading ends the leg.

`StageTracker` is pure: it gets positions and says what changed; the lot registry applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), for haversine distances."""

Stage = Literal["origin", "transit", "destination"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Circle(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=1_000_000)


class Geofence(_Strict):
    """A circle, or a polygon of at least 3 [lat, lon] corners (not closed: the last corner
    joins the first)."""

    circle: Circle | None = None
    polygon: list[tuple[float, float]] | None = None

    @model_validator(mode="after")
    def _one(self) -> Geofence:
        if (self.circle is None) == (self.polygon is None):
            raise ValueError("give exactly one of 'circle' or 'polygon'")
        if self.polygon is not None:
            if len(self.polygon) < 3:
                raise ValueError("a polygon needs at least 3 corners")
            for i, (lat, lon) in enumerate(self.polygon):
                if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                    raise ValueError(f"polygon[{i}]: [{lat}, {lon}] is not a [lat, lon] position")
        return self

    def contains(self, lat: float, lon: float) -> bool:
        if self.circle is not None:
            c = self.circle
            return distance_m(c.lat, c.lon, lat, lon) <= c.radius_m
        assert self.polygon is not None
        return in_polygon(self.polygon, lat, lon)

    def outline(self, steps: int = 72) -> list[tuple[float, float]]:
        """[lat, lon] corners to draw: the polygon, or the circle as `steps` points."""
        if self.polygon is not None:
            return list(self.polygon)
        assert self.circle is not None
        c = self.circle
        dlat = math.degrees(c.radius_m / EARTH_RADIUS_M)
        dlon = dlat / max(1e-9, math.cos(math.radians(c.lat)))
        return [
            (
                c.lat + dlat * math.sin(2 * math.pi * i / steps),
                c.lon + dlon * math.cos(2 * math.pi * i / steps),
            )
            for i in range(steps)
        ]


class SiteConfig(_Strict):
    """A site of the chain, under `traceability.sites.<site>` (the readings' `site` tag)."""

    name: str = ""
    """Printed name, e.g. 上海仓 Shanghai warehouse."""
    geofence: Geofence | None = None


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def in_polygon(corners: list[tuple[float, float]], lat: float, lon: float) -> bool:
    """Even-odd rule on the [lat, lon] plane (fences are a few km: the plane is close enough);
    a point on an edge is inside."""
    inside = False
    n = len(corners)
    for i in range(n):
        y1, x1 = corners[i]
        y2, x2 = corners[(i + 1) % n]
        if _on_segment(y1, x1, y2, x2, lat, lon):
            return True
        if (y1 > lat) != (y2 > lat):
            x = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x:
                inside = not inside
    return inside


def _on_segment(y1: float, x1: float, y2: float, x2: float, y: float, x: float) -> bool:
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    if abs(cross) > 1e-12:
        return False
    return min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2)


@dataclass(frozen=True, slots=True)
class StageChange:
    at_ns: int
    stage: Stage
    lat: float
    lon: float
    start: bool = False
    """This position starts the (planned) leg."""
    stop: bool = False
    """This position ends the leg."""


class StageTracker:
    """The stage of one geofence-driven leg, fed positions in event-time order."""

    def __init__(
        self,
        origin: Geofence,
        destination: Geofence,
        *,
        started: bool,
        stage: Stage | None = None,
        last_ns: int | None = None,
    ) -> None:
        self.origin = origin
        self.destination = destination
        self.started = started
        self.stopped = False
        self.stage = stage
        self.last_ns = last_ns
        """The newest position seen: an older one (a late upload) cannot rewrite the stages."""

    def feed(self, ts_ns: int, lat: float, lon: float) -> StageChange | None:
        if self.stopped or (self.last_ns is not None and ts_ns <= self.last_ns):
            return None
        self.last_ns = ts_ns
        if self.origin.contains(lat, lon):
            stage: Stage = "origin"
        elif self.destination.contains(lat, lon):
            stage = "destination"
        else:
            stage = "transit"
        if not self.started:
            if stage == "origin":
                if self.stage != "origin":
                    self.stage = "origin"
                    return StageChange(ts_ns, "origin", lat, lon)
                return None
            if self.stage != "origin":
                return None  # never seen at the origin: nothing to start from
            self.started = True
            self.stage = stage
            stop = stage == "destination"
            self.stopped = stop
            return StageChange(ts_ns, stage, lat, lon, start=True, stop=stop)
        if stage == self.stage:
            return None
        self.stage = stage
        if stage == "destination":
            self.stopped = True
            return StageChange(ts_ns, stage, lat, lon, stop=True)
        return StageChange(ts_ns, stage, lat, lon)
