"""Neural networks of the latent space: autoencoder, O2Lnet, their training and checkpoints."""
