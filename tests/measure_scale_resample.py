"""Measurement (not a test): which fixed resampling takes the network's shuffle grid onto
the true HR grid at a scale with no small fraction (2.4954)?

A perfect network output on grid g (noise-free 100x/1.4 transmission rendered at pixel
LR/g) is resampled onto the true HR grid and compared with the truth rendered there.
    PYTHONPATH=. python tests/measure_scale_resample.py
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from hardware.sim.optics import DEFAULT_SIM_OPTICS
from hardware.sim.render import SimRenderer
from hardware.sim.slide import slide_surface_z
from thinkscope_gui.learn.models import resample

S, N = 2.4954, 96
FIELDS = [(5000, 0), (-3000, 100), (13540, 2464), (3179, 3793)]


def linear(x: torch.Tensor, size: tuple[int, int], phase: float, grid: float) -> torch.Tensor:
    r = grid / S
    for dim, n_out in ((2, size[0]), (3, size[1])):
        u = (torch.arange(n_out, dtype=torch.float64) + phase + 0.5) * r - 0.5
        i0 = torch.floor(u)
        t = (u - i0).to(x.dtype)
        i0 = i0.long()
        shape = [1, 1, 1, 1]
        shape[dim] = n_out
        n = x.shape[dim]
        x = (x.index_select(dim, i0.clamp(0, n - 1)) * (1 - t).view(shape)
             + x.index_select(dim, (i0 + 1).clamp(0, n - 1)) * t.view(shape))
    return x


def main() -> None:
    lr_px = DEFAULT_SIM_OPTICS["40x"].pixel_size_um * 1.015
    grids = {"g3": 3.0, "g25": 2.5, "g4": 4.0, "t": S}
    opt = {k: dataclasses.replace(DEFAULT_SIM_OPTICS["100x"], pixel_size_um=lr_px / g,
                                  true_offset_xy_um=(0.0, 0.0), true_rotation_deg=0.0,
                                  true_parfocal_z_um=0.0) for k, g in grids.items()}
    r = SimRenderer(opt)
    res: dict[str, list[float]] = {}
    m = round(N * S)
    phi = (N * S - m) / 2  # the truth is rendered centred: its grid's phase on ours
    for x0, y0 in FIELDS:
        z = slide_surface_z(x0, y0)
        truth = r.transmission(x0, y0, z, "t", (m, m))
        for gname in ("g3", "g25", "g4"):
            g = grids[gname]
            src = r.transmission(x0, y0, z, gname, (int(N * g),) * 2)
            x = torch.from_numpy(np.ascontiguousarray(src.transpose(2, 0, 1)))[None].double()
            cands = {
                "linear": linear(x, (m, m), phi, g),
                "cubic -0.75 (torch)": resample(x.float(), S, (m, m), (phi, phi), g).double(),
                "cubic -0.5 (Keys)": resample(x, S, (m, m), (phi, phi), g, a=-0.5),
            }
            if gname == "g3":
                cands["old: interpolate(size) bilinear aa"] = F.interpolate(
                    x.float(), size=(m, m), mode="bilinear", align_corners=False,
                    antialias=True).double()
                cands["cubic -0.75, 0.5 HR px phase error"] = resample(
                    x.float(), S, (m, m), (phi + 0.5, phi + 0.5), g).double()
            for kind, y in cands.items():
                e = y[0].numpy().transpose(1, 2, 0)[12:-12, 12:-12] - truth[12:-12, 12:-12]
                res.setdefault(f"{gname} {kind}", []).append(
                    10 * math.log10(1.0 / float((e * e).mean())))
    for k, v in sorted(res.items()):
        print(f"{k:45s} mean PSNR {np.mean(v):5.1f} dB")


if __name__ == "__main__":
    main()
