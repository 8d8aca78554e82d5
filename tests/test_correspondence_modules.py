"""SiameseModule / RefinementModule: losses go down, the frozen stage stays frozen, the checkpoint
contract holds, and both stages run end to end through ``experiments.run``."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from corrtrack import checkpoints
from callbacks.figures import AffinityFigure
from datamodules.pairs import AffinePairDataset, AugmentConfig, collate_pairs
from datamodules.sources import ImageRecord
from lightning_modules.refine import RefinementModule
from lightning_modules.siamese import SiameseModule, pck_hits

S = 64
TINY = {"siamese": {"width": 0.25, "feat_channels": 16}, "refinement": {"width": 0.25}}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small nets: one intra-op thread. On a shared 2-core machine two OpenMP threads competing with other
    processes made these steps 50x slower (1.1 s -> 59 s for test_siamese_training_reduces_loss)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def pair_loader(tmp_path_factory) -> DataLoader:
    """Pairs of two textured images with three 'persons' each (fixed, validation-style randomness)."""
    tmp = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    records = []
    for i in range(2):
        img = cv2.resize(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), (128, 96),
                         interpolation=cv2.INTER_CUBIC)
        path = tmp / f"t{i}.png"
        cv2.imwrite(str(path), img)
        kp = np.concatenate([rng.uniform([2, 2], [126, 94], (3, 17, 2)), np.full((3, 17, 1), 2.0)], -1)
        kp[:, ::5, 2] = 0   # some joints not annotated
        records.append(ImageRecord(path=path, width=128, height=96, image_id=i,
                                   keypoints=kp.astype(np.float32), boxes=np.zeros((3, 4), np.float32),
                                   areas=np.ones(3, np.float32), layout="coco"))
    aug = AugmentConfig(max_translate=0.15, max_rotate=15, scale=(0.9, 1.1), flip_prob=0.5, photometric=0.0,
                        blur=0.0)
    ds = AffinePairDataset(records, input_size=S, max_persons=3, augment=aug, train=False)
    return DataLoader(ds, batch_size=2, collate_fn=collate_pairs)


def _fit_steps(module: pl.LightningModule, batch: dict, steps: int, lr: float = 2e-3) -> list[float]:
    module.train()
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = module.maps(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_pck_hits_counts_within_one_cell():
    maps = torch.zeros(3, 8, 8)
    maps[0, 2, 3] = maps[1, 5, 5] = maps[2, 0, 0] = 1.0     # argmax (x, y) = (3, 2), (5, 5), (0, 0)
    target = torch.tensor([[3.4, 2.4], [6.0, 6.0], [1.0, 0.0]])
    assert pck_hits(maps, target).tolist() == [True, False, True]


def test_siamese_training_reduces_loss(pair_loader):
    torch.manual_seed(0)
    batch = next(iter(pair_loader))
    module = SiameseModule(net={"siamese": TINY["siamese"]}, input_size=S)
    losses = _fit_steps(module, batch, 12)
    assert np.isfinite(losses).all()
    assert min(losses[-3:]) < 0.9 * losses[0], losses


def test_refinement_training_reduces_loss(pair_loader):
    torch.manual_seed(0)
    batch = next(iter(pair_loader))
    module = RefinementModule(net=TINY, input_size=S)
    losses = _fit_steps(module, batch, 8)
    assert np.isfinite(losses).all()
    assert min(losses[-3:]) < 0.9 * losses[0], losses


def test_include_absent_switch_changes_the_loss(pair_loader):
    batch = next(iter(pair_loader))
    assert (batch["query_valid"] & ~batch["present"]).any(), "fixture should contain truncated keypoints"
    torch.manual_seed(0)
    a = SiameseModule(net={"siamese": TINY["siamese"]}, input_size=S).eval()
    b = SiameseModule(net={"siamese": TINY["siamese"]}, input_size=S, loss={"include_absent": False}).eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert float(a.maps(batch)["loss"]) != pytest.approx(float(b.maps(batch)["loss"]))


def _trainer(tmp_path: Path, steps: int, callbacks: list | None = None) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
                      enable_checkpointing=True, default_root_dir=str(tmp_path), enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", log_every_n_steps=1, callbacks=callbacks)


def test_frozen_siamese_does_not_change_and_checkpoint_contract(pair_loader, tmp_path):
    torch.manual_seed(0)
    siamese = SiameseModule(net={"siamese": TINY["siamese"]}, input_size=S)
    t = _trainer(tmp_path / "s", 2)
    t.fit(siamese, pair_loader, pair_loader)
    s_ckpt = tmp_path / "siamese.ckpt"
    t.save_checkpoint(s_ckpt)

    module = RefinementModule.from_siamese_checkpoint(s_ckpt, refinement=TINY["refinement"], input_size=S)
    # the frozen weights are the trained ones, BN running stats included
    for k, v in siamese.siamese.state_dict().items():
        torch.testing.assert_close(module.siamese.state_dict()[k], v)
    before = {k: v.clone() for k, v in module.siamese.state_dict().items()}
    ref_before = {k: v.clone() for k, v in module.refinement.state_dict().items()}
    module.train()
    assert not module.siamese.training and module.refinement.training
    assert not any(p.requires_grad for p in module.siamese.parameters())

    t = _trainer(tmp_path / "r", 3)
    t.fit(module, pair_loader, pair_loader)
    after = module.siamese.state_dict()
    for k, v in before.items():   # weights and BatchNorm running statistics (and num_batches_tracked)
        assert torch.equal(after[k], v), f"frozen Siamese tensor {k} changed"
    changed = [k for k, v in module.refinement.state_dict().items() if not torch.equal(v, ref_before[k])]
    assert changed, "the refinement net did not train"
    assert {"val/corr_pck", "val/siamese_pck", "val/loss"} <= set(t.callback_metrics)

    r_ckpt = tmp_path / "refine.ckpt"
    t.save_checkpoint(r_ckpt)
    hp = torch.load(r_ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert hp["input_size"] == S and set(hp["net"]) == {"siamese", "refinement"}
    s2, r2 = checkpoints.correspondence_nets(checkpoints.load(r_ckpt, accept=("refine",)))
    assert r2 is not None
    for k, v in module.refinement.state_dict().items():
        torch.testing.assert_close(r2.state_dict()[k], v)
    for k, v in before.items():
        torch.testing.assert_close(s2.state_dict()[k], v)
    s3, r3 = checkpoints.correspondence_nets(checkpoints.load(s_ckpt, accept=("siamese",)))
    assert r3 is None
    reloaded = RefinementModule.load_from_checkpoint(r_ckpt)
    assert not reloaded.train().siamese.training


def test_affinity_figure_is_written(pair_loader, tmp_path):
    torch.manual_seed(0)
    module = RefinementModule(net=TINY, input_size=S)
    figure = AffinityFigure(tmp_path / "figures", "refine", every_n_validations=1, samples=3)
    t = _trainer(tmp_path, 1, callbacks=[figure])
    t.fit(module, pair_loader, pair_loader)
    pngs = sorted((tmp_path / "figures").glob("*.png"))
    assert [p.name for p in pngs] == ["refine_val_epoch000.png"] and figure.written == pngs
    img = cv2.imread(str(pngs[0]))
    # three query rows; columns: the query on I1, then C and the frozen Siamese S over I2
    assert img is not None and img.shape[0] > 3 * 150 and img.shape[1] > 3 * 150


def test_figures_count_validations_not_epochs(pair_loader, tmp_path):
    """Validation every 2nd epoch (epochs 1 and 3) and a figure every 2nd validation: one figure, of
    epoch 1 (an epoch count would never meet a validation epoch); the sanity check does not count."""
    torch.manual_seed(0)
    module = SiameseModule(net={"siamese": TINY["siamese"]}, input_size=S)
    figure = AffinityFigure(tmp_path / "figures", "siamese", every_n_validations=2)
    t = pl.Trainer(max_epochs=4, limit_train_batches=1, limit_val_batches=1, check_val_every_n_epoch=2,
                   num_sanity_val_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, accelerator="cpu", default_root_dir=str(tmp_path),
                   callbacks=[figure])
    t.fit(module, pair_loader, pair_loader)
    assert figure.validations == 2
    assert [p.name for p in sorted((tmp_path / "figures").glob("*.png"))] == ["siamese_val_epoch001.png"]


def _run(stage: str, items: list[str]) -> Path:
    from experiments.run import main

    assert main([stage, "debug", *items]) == 0


def test_fast_dev_run_both_stages(world_overrides, outputs, tmp_path):
    small = ["trainer.fast_dev_run=true", "data.input_size=64", "model.width=0.25", "trainer.accelerator=cpu"]
    _run("siamese", world_overrides + outputs + small)
    # fast_dev_run writes no checkpoint: make a real (2-step) siamese run for the refine stage
    _run("siamese", world_overrides + outputs + small[1:]
         + ["trainer.max_steps=2", "trainer.limit_train_batches=2", "run_id=s"])
    out = Path(outputs[0].split("=", 1)[1])
    summary = json.loads((out / "siamese" / "s" / "summary.json").read_text())
    assert summary["last_checkpoint"] and Path(summary["last_checkpoint"]).is_file()
    assert "val/corr_pck" in summary["final_metrics"]
    assert (out / "siamese" / "s" / "figures" / "siamese_val_epoch000.png").is_file()
    _run("refine", world_overrides + outputs + small + ["model.siamese_ckpt=latest"])


@pytest.fixture(scope="module")
def siamese_ckpt(world_overrides, tmp_path_factory) -> Path:
    """A 1-step siamese run at a small size, for the refine presets."""
    out = tmp_path_factory.mktemp("siamese_for_presets")
    from experiments.run import main

    assert main(["siamese", "debug", *world_overrides, f"output_root={out}", "data.input_size=64",
                 "model.width=0.125", "trainer.max_steps=1", "trainer.limit_train_batches=1",
                 "figures.every_n_validations=0", "run_id=s"]) == 0
    return out / "siamese" / "s"


@pytest.mark.parametrize("stage", ["siamese", "refine"])
@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_fast_dev_run_every_preset(stage, preset, world_overrides, outputs, siamese_ckpt):
    """Every preset of both stages wires up (the paper presets at a small size, to stay fast on CPU)."""
    from experiments.run import main

    small = ["trainer.fast_dev_run=true", "data.input_size=64", "data.num_workers=0", "data.batch_size=2",
             "trainer.accelerator=cpu", "trainer.precision=32-true"]
    small += ["model.width=0.125"] if stage == "siamese" else [f"model.siamese_ckpt={siamese_ckpt}",
                                                               "model.width=0.125"]
    assert main([stage, preset, *world_overrides, *outputs, *small]) == 0
