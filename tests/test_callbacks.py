"""The throughput callback that every training run carries (experiments.run.train)."""
from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks.throughput import Throughput, batch_size_of


def test_batch_size_of_nested_batches():
    assert batch_size_of(torch.zeros(5, 3)) == 5
    assert batch_size_of({"meta": "x", "image": torch.zeros(4, 3, 8, 8)}) == 4
    assert batch_size_of([{"a": 1}, (torch.zeros(7), torch.zeros(2))]) == 7
    assert batch_size_of({"a": "no tensor"}) == 0


class _Linear(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.lin(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_throughput_counts_batches_after_warmup(tmp_path):
    ds = TensorDataset(torch.randn(30, 4), torch.randn(30, 1))
    cb = Throughput(warmup=2)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[cb], default_root_dir=str(tmp_path))
    trainer.fit(_Linear(), DataLoader(ds, batch_size=4))  # batches of 4 x 7 + 2
    assert cb._samples == 4 * 5 + 2                     # the first 2 batches are warm-up
    rate = float(trainer.callback_metrics["perf/samples_per_s"])
    assert math.isfinite(rate) and rate > 0
    assert abs(rate - cb._samples / cb._seconds) < 1e-3 * rate


def test_figures_go_to_one_file_scheme_and_to_wandb_loggers_only(tmp_path):
    from types import SimpleNamespace

    import cv2
    import numpy as np
    from pytorch_lightning.loggers import CSVLogger, WandbLogger

    from callbacks.figures import WANDB_KEY, PoseFigure, figure_path

    class RecordingWandb(WandbLogger):
        def __init__(self):            # no wandb run: only the isinstance check and log_image matter
            self.calls = []

        def log_image(self, key, images, step=None, **kwargs):
            self.calls.append((key, images[0].shape, step))

    wandb, csv = RecordingWandb(), CSVLogger(str(tmp_path / "csv"))
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :, 0] = 255                                       # red in RGB
    fig = PoseFigure(tmp_path / "figures", "finetune")
    path = fig.save(SimpleNamespace(loggers=[csv, wandb]), image, epoch=7, step=42)
    assert path == figure_path(tmp_path / "figures", "finetune", 7) == tmp_path / "figures" / "finetune_val_epoch007.png"
    assert cv2.imread(str(path))[0, 0].tolist() == [0, 0, 255]  # written as BGR: the RGB image round-trips
    assert wandb.calls == [(WANDB_KEY, (20, 30, 3), 42)]
