"""Study scale on a budget (issue 8, started): compute-equivalent gain (CEG) estimation."""

from .ceg import PowerLaw, bootstrap_ceg, ceg_curve, fit_power_laws, log_slope, readoff_ceg

__all__ = ["PowerLaw", "bootstrap_ceg", "fit_power_laws", "ceg_curve", "readoff_ceg", "log_slope"]
