"""Seconds per training epoch of the autoencoder and O2Lnet at the default configuration.

    python benchmarks/training_speed.py [--steps 10] [--threads 2] [--precision float32 bfloat16]
                                        [--device cpu|cuda|auto] [--layouts contiguous channels_last]

Builds both networks from config.yaml's sections at the default grid (64 x 64, 8 channels;
O2Lnet with the slots of ``o2lnet.window_hours`` at 6-hourly cycles), on random standardised
fields and random observations of the default density per cycle, times ``--steps`` optimiser
steps of each in each precision (``training.precision``: the steps under autocast, as
``hloba.models.training.fit`` runs them) in the same run, and scales to an epoch of
``samples_per_epoch`` samples. Ratios are to the first precision and layout listed. ``--device cuda``
times the steps on the GPU (synchronised before each clock read). ``--layouts`` also times the
networks, their inputs and O2Lnet's rendered observations in channels-last memory layout (the
training keeps torch's default, ``contiguous``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.runtime import resolve_device, reuse_freed_memory  # noqa: E402
from hloba.models.autoencoder import Autoencoder, AutoencoderConfig, reconstruction_loss  # noqa: E402
from hloba.models.o2lnet import O2Lnet, O2LnetConfig, gaussian_nll, render_observations  # noqa: E402
from hloba.models.train_o2lnet import window_architecture  # noqa: E402
from hloba.models.training import resolve_precision, step_precision  # noqa: E402


LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def time_steps(step, n: int, sync=lambda: None) -> float:
    step()  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--obs-per-cycle", type=int, default=1200)
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"],
                        choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's malloc settings alone (the pipeline's rules set hloba.runtime.reuse_freed_memory)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (training.device)")
    parser.add_argument("--layouts", nargs="+", default=["contiguous"], choices=sorted(LAYOUTS))
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
    dev = resolve_device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    ae = Autoencoder(ae_cfg).to(dev)
    batch = ae_sec["batch_size"]
    x = torch.randn(batch, channels, ny, nx, device=dev)
    layout = [torch.contiguous_format]  # the memory layout being timed
    opt = torch.optim.Adam(ae.parameters(), 1e-3)

    def ae_step(dtype):
        with step_precision(dev, dtype):
            xl = x.contiguous(memory_format=layout[0])
            loss = reconstruction_loss(xl, ae(xl))
        opt.zero_grad()
        loss.backward()
        opt.step()

    frozen = Autoencoder(ae_cfg).to(dev)
    for p in frozen.parameters():
        p.requires_grad_(False)
    keys = ("width", "blocks", "window_hours", "window_lead_hours")
    arch = window_architecture({k: o2_sec[k] for k in keys if k in o2_sec},
                               pd.date_range("2001", periods=2, freq="6h"))  # slots at 6-hourly cycles
    net = O2Lnet(O2LnetConfig(autoencoder=ae_cfg.to_dict(), **arch)).to(dev)
    slots = len(net.cfg.slots)
    n = args.obs_per_cycle * batch * slots
    g = torch.Generator().manual_seed(0)
    obs = (torch.arange(batch).repeat_interleave(args.obs_per_cycle * slots),
           torch.randint(0, channels * slots, (n,), generator=g), torch.randint(0, ny, (n,), generator=g),
           torch.randint(0, nx, (n,), generator=g), torch.randn(n, generator=g))
    obs = tuple(t.to(dev) for t in obs)
    z_t = torch.randn(batch, ae_cfg.n_latent, device=dev)
    opt2 = torch.optim.Adam(net.parameters(), 1e-3)

    def o2l_step(dtype):
        with step_precision(dev, dtype):
            rendered = render_observations(*obs, batch, channels * slots, ny, nx).contiguous(memory_format=layout[0])
            z_o, logvar = net(rendered)
            loss = gaussian_nll(z_t, z_o, logvar) + torch.mean((frozen.decode(z_o) - x) ** 2)
        opt2.zero_grad()
        loss.backward()
        opt2.step()

    first = {}
    for precision, name_layout in [(p, n) for p in args.precision for n in args.layouts]:
        dtype = resolve_precision(precision, dev)
        layout[0] = LAYOUTS[name_layout]
        for module in (ae, net, frozen):
            module.to(memory_format=layout[0])
        for name, step, sec, model in (("autoencoder", ae_step, ae_sec, ae), ("o2lnet", o2l_step, o2_sec, net)):
            per_step = time_steps(lambda: step(dtype), args.steps, sync)
            first.setdefault(name, per_step)
            steps = sec["samples_per_epoch"] // sec["batch_size"]
            params = sum(p.numel() for p in model.parameters())
            print(f"{name} ({precision}, {name_layout}): {params / 1e6:.2f} M parameters, {per_step * 1000 / sec['batch_size']:.1f} ms "
                  f"per sample, {per_step * steps:.0f} s per epoch of {sec['samples_per_epoch']} samples, "
                  f"{per_step / first[name]:.2f} x {args.precision[0]} {args.layouts[0]} ({dev}, {args.threads} threads, freed memory "
                  f"reused: {reused})")


if __name__ == "__main__":
    main()
