"""What the tracking evaluation (``track_eval``, callbacks/tracking_eval.py) costs a training stage.

    python -m experiments.track_eval_cost STAGE [PRESET ...] [key=value ...] [--steps N]

Builds the stage as ``python -m experiments.run`` does (nets of the preset's size, untrained: the cost does
not depend on the weights; the refine stage gets an untrained Siamese stage), times ``--steps`` training
steps (data loading in the process) and two tracking evaluations (the first also precomputes the cues
that do not train), all on one thread in CPU seconds of this process, which a shared machine does not
distort the way it does wall time. From them: an epoch's cost, the evaluations a full schedule runs
(validations = max_epochs / check_val_every_n_epoch; the 1st, N+1-th, ... of them) and the evaluations'
share of the stage's training time. Prints one line of JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def measure(stage: str, presets: list[str], overrides: list[str], steps: int = 12, warmup: int = 3) -> dict:
    import pytorch_lightning as pl
    import torch

    from callbacks.tracking_eval import TrackingEvaluationCallback
    from experiments.config import load_config
    from experiments.stages import get_builder

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="track-eval-cost-"))
    extra = ["data.num_workers=0"]
    if stage == "refine":
        from lightning_modules.siamese import SiameseModule

        m = load_config("siamese", presets).model
        torch.manual_seed(0)
        sia = SiameseModule(net={"siamese": {"variant": m.variant, "width": float(m.width),
                                             "feat_channels": int(m.feat_channels), "normalize": m.normalize,
                                             "descriptor": m.descriptor}, "refinement": None})
        torch.save({"state_dict": sia.state_dict(), "hyper_parameters": dict(sia.hparams)}, tmp / "siamese.ckpt")
        extra.append(f"model.siamese_ckpt={tmp / 'siamese.ckpt'}")
    cfg = load_config(stage, presets, [*extra, *overrides])
    pl.seed_everything(int(cfg.seed))
    parts = get_builder(stage)(cfg, tmp)
    evals = [c for c in parts.callbacks if isinstance(c, TrackingEvaluationCallback)]
    if not evals:
        raise SystemExit(f"{stage} {' '.join(presets)}: track_eval is disabled or no cue can run")
    cb = evals[0]

    class Clock(pl.Callback):
        """CPU seconds from one training batch's end to the next (data loading + step), after a warm-up."""

        def __init__(self) -> None:
            self.n, self.cpu, self.last = 0, 0.0, None

        def on_train_batch_end(self, *args) -> None:
            now = time.process_time()
            self.n += 1
            if self.n > warmup and self.last is not None:
                self.cpu += now - self.last
            self.last = now

    clock = Clock()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=steps + warmup + 1,
                         limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[clock])
    trainer.fit(parts.module, datamodule=parts.datamodule)
    step_cpu = clock.cpu / (clock.n - warmup - 1)
    steps_per_epoch = len(parts.datamodule.train_dataloader())
    epoch_cpu = step_cpu * steps_per_epoch

    cb.prepare()
    c0 = time.process_time()
    cb.evaluate(parts.module)
    first = time.process_time() - c0
    c0 = time.process_time()
    cb.evaluate(parts.module)
    later = time.process_time() - c0

    epochs = int(cfg.trainer.max_epochs)
    validations = epochs // int(cfg.trainer.check_val_every_n_epoch)
    runs = (validations - 1) // cb.every + 1 if validations else 0
    total = (first + (runs - 1) * later) if runs else 0.0
    te = cfg.track_eval
    return {"stage": stage, "presets": presets, "overrides": overrides, "cues": cb.cues, "boxes": te.boxes,
            "input_size": cb.config.input_size, "videos": len(cb.videos),
            "labelled_frames": sum(len(v.labeled()) for v in cb.videos), "every_n_validations": cb.every,
            "train_step_cpu_s": round(step_cpu, 3), "steps_per_epoch": steps_per_epoch,
            "epoch_cpu_s": round(epoch_cpu, 1), "first_eval_cpu_s": round(first, 1),
            "eval_cpu_s": round(later, 1), "max_epochs": epochs, "validations": validations, "evaluations": runs,
            "evals_cpu_s": round(total, 1), "training_cpu_s": round(epoch_cpu * epochs, 1),
            "share": round(total / (epoch_cpu * epochs), 3) if epochs else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.track_eval_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=["siamese", "refine"])
    p.add_argument("items", nargs="*", help="presets (no '='; default: cpu) and key=value overrides")
    p.add_argument("--steps", type=int, default=12, help="timed training steps (after 3 warm-up steps)")
    args = p.parse_args(argv)
    presets = [a for a in args.items if "=" not in a] or ["cpu"]
    overrides = [a for a in args.items if "=" in a]
    print(json.dumps(measure(args.stage, presets, overrides, args.steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
