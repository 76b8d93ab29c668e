"""The built-in atmosphere: a two-layer quasi-geostrophic model with moisture."""
