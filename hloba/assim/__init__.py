"""Latent data assimilation: the HLOBA update as pure functions (and, later, the cycle loop)."""
