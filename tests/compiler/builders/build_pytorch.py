"""Run in the PyTorch converter environment: ``build OUT`` writes a traced SqueezeNet 1.0 (random weights,
seed 0) as OUT/model.pth; ``reference JOBS.json`` runs it on every array of each job's inputs (outputs
``<key>/0``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU(inplace=True))
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, e1, 1), nn.ReLU(inplace=True))
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, e3, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.expand1(x), self.expand3(x)], 1)


class SqueezeNet10(nn.Module):
    """SqueezeNet 1.0 as torchvision defines it (Iandola et al. 2016), 1000 classes."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 7, stride=2), nn.ReLU(inplace=True), pool,
            Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool,
            Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256), pool, Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, classes, 1), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def build(out: Path) -> None:
    torch.manual_seed(0)
    model = SqueezeNet10().eval()
    for m in model.modules():  # small weights keep the random ReLU net's activations in a useful range
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight)
            nn.init.uniform_(m.bias, 0.0, 0.05)
    traced = torch.jit.trace(model, torch.rand(1, 3, 224, 224))
    out.mkdir(parents=True, exist_ok=True)
    traced.save(str(out / "model.pth"))


def reference(kind: str, model_dir: Path, inputs: Path, out: Path) -> None:
    del kind  # one kind
    model = torch.jit.load(str(model_dir / "model.pth")).eval()
    with np.load(inputs) as data, torch.no_grad():
        results = {f"{k}/0": model(torch.from_numpy(data[k])).numpy() for k in data.files}
    np.savez(out, **results)


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(Path(sys.argv[2]))
    else:  # reference JOBS.json: [{"kind", "model_dir", "inputs", "out"}], one process for all of them
        import json

        for job in json.loads(Path(sys.argv[2]).read_text()):
            reference(job["kind"], Path(job["model_dir"]), Path(job["inputs"]), Path(job["out"]))
