"""SOC stocks from concentrations: t C/ha for a depth interval and t CO₂e, with Monte Carlo uncertainty.

``stock (t C/ha) = SOC (g/kg) × bulk density (g/cm³) × thickness (cm) × (1 − coarse fragments) × 0.1`` — SOC as a mass
fraction (g/kg = 10⁻³), bulk density in t/m³, thickness in m (cm × 10⁻²), over 10⁴ m²/ha (FAO 2020, *A protocol for
measurement, monitoring, reporting and verification of soil organic carbon in agricultural landscapes*; Verra
VT0014 v1.0). ``t CO₂e = t C × 44/12`` (the molar masses of CO₂ and C).

Bulk density and coarse fragments come from a raster, a constant with its sd, or (bulk density) a multi-task head of
the run; their draws are joint with the SOC draws (:func:`stock_draws`), so a zone's stock uncertainty carries both.

Over a depth interval of profile predictions (``sptgnn aggregate --depths 0-30``) the stock is the sum over the
standard layers inside it (:func:`standard_layers`: the GlobalSoilMap intervals, cut at the interval's ends), each with
its own SOC, bulk density and coarse fragments (:func:`profile_stock_t_ha`): ``Σ_l SOC_l × BD_l × t_l × (1 − CF_l) ×
0.1`` (the layer-wise sum of FAO 2020, eq. 1, and of GlobalSoilMap's stock specification, Arrouays et al. 2014, Adv.
Agron. 125).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sptgnn.data.spline import GSM_DEPTHS

#: t CO₂ per t C (molar masses 44.01 / 12.011, rounded as in IPCC practice).
CO2_PER_C = 44.0 / 12.0


def soc_stock_t_ha(soc_g_kg, bulk_density_g_cm3, thickness_cm: float, coarse_fraction=0.0):
    """SOC stock of a layer in t C/ha (see the module docstring); arrays broadcast.

    Args:
        soc_g_kg: SOC concentration of the fine earth, g/kg.
        bulk_density_g_cm3: Bulk density of the fine earth, g/cm³.
        thickness_cm: Layer thickness, cm (e.g. 30 for 0–30 cm).
        coarse_fraction: Volume share of coarse fragments (> 2 mm), 0–1.

    Raises:
        ValueError: A thickness that is not positive, or a coarse fraction outside [0, 1].
    """
    if not thickness_cm > 0:
        raise ValueError(f"layer thickness must be positive (cm), got {thickness_cm}")
    cf = np.asarray(coarse_fraction, dtype=float)
    if np.any((cf < 0) | (cf > 1)):
        raise ValueError("coarse fragments are a volume share in [0, 1]; give 0.15 for 15 %")
    return np.asarray(soc_g_kg, float) * np.asarray(bulk_density_g_cm3, float) * thickness_cm * (1.0 - cf) * 0.1


def standard_layers(top_cm: float, bottom_cm: float,
                    intervals: tuple[tuple[float, float], ...] | None = None) -> list[tuple[float, float]]:
    """The standard layers (cm) that make up the interval ``top_cm``–``bottom_cm``: the ``intervals`` (default the
    GlobalSoilMap six, 0–5 … 100–200 cm) that overlap it, cut at its ends; below the last interval one layer to
    ``bottom_cm``. ``standard_layers(0, 30)`` is ``[(0, 5), (5, 15), (15, 30)]``, ``standard_layers(0, 20)`` ends in
    ``(15, 20)``.

    Raises:
        ValueError: ``top_cm`` negative or not above ``bottom_cm``.
    """
    top_cm, bottom_cm = float(top_cm), float(bottom_cm)
    if not 0 <= top_cm < bottom_cm:
        raise ValueError(f"a depth interval runs from a top >= 0 to a deeper bottom (cm), got {top_cm:g}-{bottom_cm:g}")
    intervals = GSM_DEPTHS if intervals is None else intervals
    layers = [(max(float(a), top_cm), min(float(b), bottom_cm)) for a, b in intervals if a < bottom_cm and b > top_cm]
    last = max(float(intervals[-1][1]), top_cm)
    if bottom_cm > last:
        layers.append((last, bottom_cm))
    return layers


def layer_weights(layers) -> np.ndarray:
    """Thickness shares ``(L,)`` of the layers ``(top_cm, bottom_cm)`` in their sum: the weights of an interval's
    thickness-weighted mean (0–5, 5–15, 15–30 cm: 1/6, 1/3, 1/2)."""
    thickness = np.array([b - a for a, b in layers], dtype=float)
    return thickness / thickness.sum()


def profile_stock_t_ha(soc_g_kg, bulk_density_g_cm3, layers, coarse_fraction=None):
    """SOC stock (t C/ha) of a depth interval from its standard layers: ``Σ_l SOC_l × BD_l × t_l × (1 − CF_l) × 0.1``.

    Args:
        soc_g_kg: SOC of each layer, g/kg, ``(L, ...)`` (e.g. ``(L, R, n)`` draws).
        bulk_density_g_cm3: Bulk density of each layer, g/cm³, ``(L, ...)`` or broadcastable (one value for all).
        layers: The ``L`` layers ``(top_cm, bottom_cm)`` (:func:`standard_layers`).
        coarse_fraction: Volume share of coarse fragments of each layer (0–1), as bulk density; ``None``: 0.

    Returns:
        The stock, t C/ha, the shape of one layer's SOC (``soc_g_kg.shape[1:]``).

    Raises:
        ValueError: A layer that is not positive in thickness, a coarse share outside [0, 1], or ``L`` that differs
            from the number of layers.
    """
    soc = np.asarray(soc_g_kg, float)
    if len(soc) != len(layers):
        raise ValueError(f"{len(soc)} layers of SOC for {len(layers)} depth layers")
    bd = np.broadcast_to(np.asarray(bulk_density_g_cm3, float), soc.shape)
    cf = np.zeros_like(soc) if coarse_fraction is None else np.broadcast_to(np.asarray(coarse_fraction, float),
                                                                            soc.shape)
    return sum(soc_stock_t_ha(soc[i], bd[i], b - a, cf[i]) for i, (a, b) in enumerate(layers))


def co2e_t(stock_t_c):
    """t CO₂e of t C (× 44/12)."""
    return np.asarray(stock_t_c, float) * CO2_PER_C


@dataclass
class Property:
    """A soil property of the stock formula: a constant ``value`` with its ``sd`` (same units), or per-pixel values
    and sds (arrays ``(n,)``, e.g. read from rasters). Draws are Gaussian, truncated to ``[low, high]``.

    Attributes:
        value: Mean (g/cm³ for bulk density, 0–1 for coarse fragments), scalar or ``(n,)``.
        sd: Its sd, scalar or ``(n,)`` (0: known exactly).
        low, high: Physical range of the draws.
    """

    value: float | np.ndarray
    sd: float | np.ndarray = 0.0
    low: float = 0.0
    high: float = np.inf

    def draws(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """``(R, n)`` draws."""
        out = np.asarray(self.value, float) + np.asarray(self.sd, float) * rng.standard_normal(shape)
        return np.clip(out, self.low, self.high)


def stock_draws(soc_draws_g_kg: np.ndarray, bulk_density: Property | np.ndarray, thickness_cm: float,
                coarse: Property | np.ndarray | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Stock draws in t C/ha, ``(R, n)``, from SOC draws ``(R, n)`` (g/kg, e.g. spatially correlated realisations) and
    bulk density and coarse fragments as :class:`Property` (drawn independently of SOC) or as draws ``(R, n)`` joint
    with the SOC draws (a multi-task head's, same member and residual per draw: correlated)."""
    rng = rng or np.random.default_rng(0)
    shape = np.shape(soc_draws_g_kg)
    bd = bulk_density.draws(shape, rng) if isinstance(bulk_density, Property) else np.asarray(bulk_density, float)
    cf = (0.0 if coarse is None else coarse.draws(shape, rng) if isinstance(coarse, Property)
          else np.asarray(coarse, float))
    return soc_stock_t_ha(soc_draws_g_kg, bd, thickness_cm, cf)


def stock_moments_delta(soc_mean, soc_sd, bd_mean, bd_sd, thickness_cm: float, coarse_fraction=0.0):
    """Mean and sd of the stock (t C/ha) of independent SOC and bulk density by the delta method (first order):
    ``E ≈ c μ_s μ_b``, ``Var ≈ c² (μ_b² σ_s² + μ_s² σ_b²)`` with ``c = 0.1 × thickness × (1 − coarse)``; the check of
    :func:`stock_draws` on small coefficients of variation."""
    c = 0.1 * thickness_cm * (1.0 - np.asarray(coarse_fraction, float))
    mean = c * np.asarray(soc_mean, float) * np.asarray(bd_mean, float)
    sd = c * np.sqrt(np.asarray(bd_mean, float) ** 2 * np.asarray(soc_sd, float) ** 2
                     + np.asarray(soc_mean, float) ** 2 * np.asarray(bd_sd, float) ** 2)
    return mean, sd


__all__ = ["CO2_PER_C", "Property", "co2e_t", "layer_weights", "profile_stock_t_ha", "soc_stock_t_ha", "standard_layers",
           "stock_draws", "stock_moments_delta"]
