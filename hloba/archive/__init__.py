"""The reanalysis archive: dask-parallel decoding of latent analyses with Monte-Carlo uncertainty."""
