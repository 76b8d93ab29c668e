"""Seconds per training epoch of the autoencoder and O2Lnet at the default configuration.

    python benchmarks/training_speed.py [--steps 10] [--threads 2]

Builds both networks from config.yaml's sections at the default grid (64 x 64, 8 channels), on
random standardised fields and a random cycle of observations of the default density, times
``--steps`` optimiser steps of each in the same run, and scales to an epoch of
``samples_per_epoch`` samples.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.runtime import reuse_freed_memory  # noqa: E402
from hloba.models.autoencoder import Autoencoder, AutoencoderConfig, reconstruction_loss  # noqa: E402
from hloba.models.o2lnet import O2Lnet, O2LnetConfig, gaussian_nll, render_observations  # noqa: E402


def time_steps(step, n: int) -> float:
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--obs-per-cycle", type=int, default=1200)
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's malloc settings alone (the pipeline's rules set hloba.runtime.reuse_freed_memory)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reused = False if args.system_malloc else reuse_freed_memory()
    config = yaml.safe_load(Path(args.config).read_text())
    qg = config["world"].get("qg", {})
    ny, nx, channels = qg.get("ny", 64), qg.get("nx", 64), 8
    ae_sec, o2_sec = config["autoencoder"], config["o2lnet"]
    ae_cfg = AutoencoderConfig(channels=channels, ny=ny, nx=nx, periodic_lat=True, periodic_lon=True,
                               latent_channels=ae_sec["latent_channels"], patch=ae_sec["patch"], width=ae_sec["width"],
                               blocks=ae_sec["blocks"])
    ae = Autoencoder(ae_cfg)
    batch = ae_sec["batch_size"]
    x = torch.randn(batch, channels, ny, nx)
    opt = torch.optim.Adam(ae.parameters(), 1e-3)

    def ae_step():
        loss = reconstruction_loss(x, ae(x))
        opt.zero_grad()
        loss.backward()
        opt.step()

    ae_per_step = time_steps(ae_step, args.steps)
    net = O2Lnet(O2LnetConfig(autoencoder=ae_cfg.to_dict(), width=o2_sec["width"], blocks=o2_sec["blocks"]))
    for p in ae.parameters():
        p.requires_grad_(False)
    n = args.obs_per_cycle * batch
    g = torch.Generator().manual_seed(0)
    obs = (torch.arange(batch).repeat_interleave(args.obs_per_cycle), torch.randint(0, channels, (n,), generator=g),
           torch.randint(0, ny, (n,), generator=g), torch.randint(0, nx, (n,), generator=g), torch.randn(n, generator=g))
    z_t = torch.randn(batch, ae_cfg.n_latent)
    opt2 = torch.optim.Adam(net.parameters(), 1e-3)

    def o2l_step():
        rendered = render_observations(*obs, batch, channels, ny, nx)
        z_o, logvar = net(rendered)
        loss = gaussian_nll(z_t, z_o, logvar) + torch.mean((ae.decode(z_o) - x) ** 2)
        opt2.zero_grad()
        loss.backward()
        opt2.step()

    o2_per_step = time_steps(o2l_step, args.steps)
    for name, per_step, sec, model in (("autoencoder", ae_per_step, ae_sec, ae), ("o2lnet", o2_per_step, o2_sec, net)):
        steps = sec["samples_per_epoch"] // sec["batch_size"]
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params / 1e6:.2f} M parameters, {per_step * 1000 / sec['batch_size']:.1f} ms per sample, "
              f"{per_step * steps:.0f} s per epoch of {sec['samples_per_epoch']} samples ({args.threads} threads, "
              f"freed memory reused: {reused})")


if __name__ == "__main__":
    main()
