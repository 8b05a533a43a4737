"""Geofences (gateway/records/geofence.py): geometry against references, the stage machine."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.records.geofence import (
    EARTH_RADIUS_M,
    Circle,
    Geofence,
    StageTracker,
    distance_m,
    in_polygon,
)

S = 1_000_000_000
SQUARE = [(31.30, 121.60), (31.30, 121.62), (31.32, 121.62), (31.32, 121.60)]


def destination(lat: float, lon: float, bearing_deg: float, metres: float) -> tuple[float, float]:
    """The point `metres` from (lat, lon) on a bearing (spherical Earth, the textbook formula)."""
    d = metres / EARTH_RADIUS_M
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), math.degrees(l2)


def test_distance_of_a_published_pair() -> None:
    # one degree of latitude on the mean-radius sphere: 2πR/360 = 111.195 km
    assert distance_m(31.0, 121.0, 32.0, 121.0) == pytest.approx(111_195.08, abs=0.5)
    assert distance_m(31.2, 121.5, 31.2, 121.5) == 0.0


@given(
    st.floats(-60, 60),
    st.floats(-179, 179),
    st.floats(0, 360),
    st.floats(50, 20_000),
    st.floats(0.05, 0.95),
)
def test_circle_contains_what_is_nearer_than_its_radius(
    lat: float, lon: float, bearing: float, radius: float, f: float
) -> None:
    fence = Geofence(circle=Circle(lat=lat, lon=lon, radius_m=radius))
    assert fence.contains(*destination(lat, lon, bearing, radius * f))
    assert not fence.contains(*destination(lat, lon, bearing, radius * (1 + f)))


@given(st.lists(st.floats(0.01, 1), min_size=4, max_size=4))
def test_convex_combinations_of_corners_are_inside_and_the_outside_is_not(w: list[float]) -> None:
    total = sum(w)
    lat = sum(c[0] * x for c, x in zip(SQUARE, w, strict=True)) / total
    lon = sum(c[1] * x for c, x in zip(SQUARE, w, strict=True)) / total
    assert in_polygon(SQUARE, lat, lon)
    assert not in_polygon(SQUARE, lat + 0.05, lon)
    assert not in_polygon(SQUARE, lat, lon - 0.05)


def test_a_concave_polygon_excludes_its_notch() -> None:
    u = [
        (0.0, 0.0),
        (0.0, 3.0),
        (3.0, 3.0),
        (3.0, 2.0),
        (1.0, 2.0),
        (1.0, 1.0),
        (3.0, 1.0),
        (3.0, 0.0),
    ]
    assert in_polygon(u, 0.5, 1.5) and in_polygon(u, 2.0, 0.5) and in_polygon(u, 2.0, 2.5)
    assert not in_polygon(u, 2.0, 1.5)  # the notch
    assert in_polygon(u, 1.0, 1.5)  # on an edge


def test_fence_config_errors() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Geofence()
    with pytest.raises(ValidationError, match="at least 3"):
        Geofence(polygon=[(0.0, 0.0), (1.0, 1.0)])
    with pytest.raises(ValidationError, match=r"polygon\[1\]"):
        Geofence(polygon=[(0.0, 0.0), (91.0, 1.0), (1.0, 0.0)])
    outline = Geofence(circle=Circle(lat=31.2, lon=121.5, radius_m=500)).outline(36)
    assert len(outline) == 36
    assert all(distance_m(31.2, 121.5, a, b) == pytest.approx(500, rel=0.01) for a, b in outline)


def test_a_planned_leg_starts_on_leaving_the_origin_and_stops_inside_the_destination() -> None:
    origin = Geofence(circle=Circle(lat=31.2, lon=121.5, radius_m=500))
    dest = Geofence(polygon=SQUARE)
    t = StageTracker(origin, dest, started=False)
    assert t.feed(1 * S, 31.5, 121.9) is None  # never seen at the origin: nothing starts
    c = t.feed(2 * S, 31.2, 121.5)
    assert c is not None and c.stage == "origin" and not c.start
    assert t.feed(3 * S, 31.2001, 121.5) is None  # still at the origin
    assert t.feed(2 * S, 31.9, 121.9) is None  # older than what was seen: ignored
    c = t.feed(4 * S, 31.25, 121.55)
    assert c is not None and c.start and c.stage == "transit" and c.at_ns == 4 * S
    assert t.feed(5 * S, 31.26, 121.56) is None
    c = t.feed(6 * S, 31.31, 121.61)
    assert c is not None and c.stop and c.stage == "destination"
    assert t.feed(7 * S, 31.2, 121.5) is None  # over
