"""The study behind the uncertainty map's estimator (fitted and chosen on utkface/val only)."""
