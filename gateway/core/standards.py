"""Reference numbers vigil encodes, each in one place with its source.

Rule kinds take their defaults from here, dashboards draw these limits and reports use the same
conventions; a rule pack or binding can still set another value for a product. Change a number
here only when its source changes, and name the source.
"""

from __future__ import annotations

from collections.abc import Mapping

# -- EU GMP Annex 1 (2022), Manufacture of Sterile Medicinal Products -------------------------

ANNEX1_PARTICLE_LIMITS: Mapping[tuple[str, float], tuple[float | None, float | None]] = {
    # Annex 1 (2022) Table 5, "Maximum permitted total particle concentration for monitoring"
    # (section 9): (grade, particle size µm) -> (at rest, in operation), maximum particles/m³ of
    # that size or larger; None: "not predetermined" (grade D in operation, set by the site).
    # Not Table 1, the limits for cleanroom *classification*, where ≥ 5 µm is "not specified"
    # for grade A and for grade B at rest: vigil monitors rooms in use, and monitoring is judged
    # against Table 5, which sets 29/m³ there.
    ("A", 0.5): (3_520, 3_520),
    ("A", 5.0): (29, 29),
    ("B", 0.5): (3_520, 352_000),
    ("B", 5.0): (29, 2_930),
    ("C", 0.5): (352_000, 3_520_000),
    ("C", 5.0): (2_930, 29_300),
    ("D", 0.5): (3_520_000, None),
    ("D", 5.0): (29_300, None),
}

ANNEX1_MIN_DP_PA = 10.0
"""Annex 1 (2022), premises (section 4): at least 10 Pa between adjacent rooms of different
grades (a guidance value), monitored continuously."""

# -- Mean kinetic temperature, USP <1079.2> ---------------------------------------------------

MKT_DELTA_H_KJ_MOL = 83.144
"""USP <1079.2>: activation energy ΔH to use unless the product's own is known."""
MKT_GAS_CONSTANT_KJ_MOL_K = 8.3144e-3
"""The gas constant R as USP <1079.2> uses it, so that ΔH/R = 10 000 K."""

# -- Moist heat sterilisation: Ph. Eur. 5.1.1 (reference conditions), F0 (Ph. Eur. 5.1.5) ------

STEAM_STERILISATION_C = 121.0
STEAM_STERILISATION_HOLD_S = 15 * 60.0
"""Ph. Eur. 5.1.1 reference conditions for aqueous preparations: at least 121 °C for 15 min."""
F0_T_REF_C = 121.1
F0_Z_C = 10.0
"""F0: equivalent minutes at 121.1 °C with z = 10 °C (Ph. Eur. 5.1.5)."""

# -- vigil's sample-and-hold conventions (docs/rules.md, "How rules see the data") ------------

DEFAULT_MAX_GAP_S = 3600.0
"""A reading holds its value until the series' next reading, for at most this long; after it
the value is unknown. Rules make it configurable (`max_gap`); reports follow the profile's."""
ON_OFF_MAX_GAP_S = 86_400.0
"""The same for signals that report on change only: battery level, door, mains power."""

# -- China GSP annex on automatic temperature and humidity monitoring (药品经营质量管理规范 附录)

GSP_RECORD_STORAGE_S = 30 * 60.0
"""A record at least every 30 minutes in storage (warehouses, cold rooms)."""
GSP_RECORD_TRANSPORT_S = 5 * 60.0
"""A record at least every 5 minutes in transport (refrigerated trucks, containers)."""
GSP_RECORD_OUT_OF_RANGE_S = 2 * 60.0
"""A record at least every 2 minutes while the temperature is out of range."""
GSP_RECORDS_YEARS = 5
"""GSP (药品经营质量管理规范, 2016): records and vouchers are kept at least 5 years, monitoring
data included; the floor of `retention.records_years`."""
