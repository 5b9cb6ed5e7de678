"""Carbon accounting: SOC stocks (t C/ha, t CO₂e) with Monte Carlo uncertainty."""

from sptgnn.accounting.stocks import CO2_PER_C, Property, co2e_t, soc_stock_t_ha, stock_draws, stock_moments_delta

__all__ = ["CO2_PER_C", "Property", "co2e_t", "soc_stock_t_ha", "stock_draws", "stock_moments_delta"]
