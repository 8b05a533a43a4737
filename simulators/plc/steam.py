"""Saturated steam: pressure ↔ temperature (Antoine equation for water, two ranges).

Accurate to well under 1 % between 1 and 200 °C (121.1 °C → 205 kPa, 134 °C → 304 kPa), which is
what an autoclave simulation needs for chamber temperature and pressure to stay consistent.
"""

from __future__ import annotations

import math

MMHG_KPA = 0.133322368
ATM_KPA = 101.325
# (A, B, C) for log10(p/mmHg) = A - B / (C + T/°C)
_LOW = (8.07131, 1730.63, 233.426)  # 1-100 °C
_HIGH = (8.14019, 1810.94, 244.485)  # 99-374 °C


def psat_kpa(temp_c: float) -> float:
    """Saturation pressure of water (absolute kPa) at temp_c."""
    a, b, c = _LOW if temp_c < 100.0 else _HIGH
    return 10 ** (a - b / (c + temp_c)) * MMHG_KPA


def tsat_c(pressure_kpa: float) -> float:
    """Saturation temperature (°C) of water at an absolute pressure in kPa."""
    log_p = math.log10(pressure_kpa / MMHG_KPA)
    a, b, c = _HIGH if pressure_kpa >= psat_kpa(100.0) else _LOW
    return b / (a - log_p) - c
