"""Verification of analyses against the truth (OSSE) and the observations."""
