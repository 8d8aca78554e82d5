"""Helper of tests/test_tracking_eval.py (not a test): a short ``siamese debug`` training run with the
tracking evaluation and a ModelCheckpoint monitoring ``track/corr/mota``, built by the stage builder as
``python -m experiments.run`` builds it. Run as a script so that Lightning's DDP launcher can start the
other ranks the same way; every rank writes what it logged to ``OUT/rank<r>.json``.

    python tests/ddp_track_eval.py OUT DEVICES [key=value ...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: Path, devices: int, overrides: list[str]) -> None:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from experiments.config import load_config
    from experiments.stages import get_builder

    cfg = load_config("siamese", ["debug"], overrides)
    pl.seed_everything(int(cfg.seed))
    parts = get_builder("siamese")(cfg, out)
    ckpt = ModelCheckpoint(dirpath=str(out / "checkpoints"), monitor="track/corr/mota", mode="max", save_top_k=1)

    class Dump(pl.Callback):
        def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("track/")}
            best = ckpt.best_model_score
            (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(
                {"metrics": logged, "world_size": trainer.world_size, "best_path": ckpt.best_model_path,
                 "best_score": None if best is None else float(best)}))

    trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                         max_steps=2, limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=0,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[*parts.callbacks, ckpt, Dump()], default_root_dir=str(out))
    trainer.fit(parts.module, datamodule=parts.datamodule)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
