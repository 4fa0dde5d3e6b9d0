"""The training engine shared by every model family.

>>> from handrecon.train import load_config, train
>>> summary = train(load_config("configs/tiny-synth.yaml", ["train.steps=50"]), "runs/tiny")

One step: a batch of ``batch_size`` samples per process -> ``model(image)`` (under float16 autocast with
``optim.amp`` on CUDA) -> the active loss terms (:class:`handrecon.train.objective.Objective`) ->
:func:`handrecon.losses.total_loss` -> NaN/inf guard -> backward -> gradient clipping -> optimiser and
learning-rate schedule. With ``data.two_view`` each sample gives two augmented views; the model sees both
(2B images) and the consistency terms compare them.

Reproducibility: Python, NumPy and torch are seeded from ``train.seed`` (the model is built from the same
seed on every rank; afterwards each rank reseeds with ``seed + rank``); the batch order depends only on
(seed, epoch) (:mod:`handrecon.train.data`); augmentation only on (seed, epoch, index). A run resumed from a
checkpoint (``resume=True``) restores weights, optimiser, schedule, GradScaler, RNG states and the position
in the epoch, and on CPU reproduces the uninterrupted run bit for bit.

Distributed: started under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel
(gloo on CPU, NCCL on GPU); ``data.batch_size`` is per process; rank 0 writes every file and runs
validation (the other ranks wait at their next step). All ranks read the checkpoint from ``OUT`` when
resuming, so ``OUT`` must be on a file system every node sees.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from handrecon.fileio import atomic_path
from handrecon.train import distributed as dist_utils
from handrecon.train.checkpoint import (
    find_checkpoint,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from handrecon.train.config import (
    ConfigError,
    OptimConfig,
    TrainingConfig,
    config_differences,
    config_to_dict,
    config_to_yaml,
)
from handrecon.train.data import (
    ShardedBatchSampler,
    build_train_dataset,
    build_val_dataset,
    make_train_loader,
    make_val_loader,
)
from handrecon.train.logging import RunLogger
from handrecon.train.objective import Objective, ValidationAccumulator

__all__ = ["Trainer", "TrainingError", "train", "lr_factor", "seed_everything"]

#: Config keys that may change when resuming without a notice.
_RESUME_FREE = ("train.steps", "train.epochs", "train.log_every", "train.val_every", "train.checkpoint_every",
                "train.progress", "train.tensorboard", "data.num_workers", "data.val_batch_size")
_CHECKPOINT_FORMAT = 1


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss or gradient); the message says at which step and why."""


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_factor(step: int, optim: OptimConfig, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of ``optim.lr`` for 0-based optimisation step ``step``."""
    f = 1.0
    if optim.warmup and step < optim.warmup:
        f *= (step + 1) / optim.warmup
    if optim.schedule == "step":
        scale = steps_per_epoch if optim.milestone_unit == "epoch" else 1
        f *= optim.gamma ** sum(step >= m * scale for m in optim.milestones)
    elif optim.schedule == "cosine":
        progress = min(step / max(total_steps - 1, 1), 1.0)
        lr = optim.min_lr + (optim.lr - optim.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        f *= lr / optim.lr
    return f


def _total_norm(grads: list) -> torch.Tensor:
    """Global 2-norm of a list of gradients (``torch.nn.utils.get_total_norm`` where torch has it)."""
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]))


def _fmt(values: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items())


def _load_init_weights(model, path, partial: bool = False) -> list[str]:
    """Load ``path`` (safetensors) into ``model``; every tensor must fit (config key ``model.init``). With
    ``partial`` the file may lack some of the model's tensors; returns the names it lacked."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if p.suffix != ".safetensors":
        p = p.with_suffix(".safetensors")
    if not p.is_file():
        raise ConfigError(f"config key 'model.init': {p} is not a file (expected weights written by save_model)")
    try:
        state = load_file(str(p))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"config key 'model.init': {p} is not a readable safetensors file ({exc})") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ConfigError(f"config key 'model.init': {p} does not fit the model: "
                          f"{str(exc).splitlines()[-1].strip()}") from None
    if unexpected or (missing and not partial):
        hint = "" if unexpected else " (set model.init_partial: true to start those from scratch)"
        raise ConfigError(f"config key 'model.init': {p} does not fit the model: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}{hint}")
    return list(missing)


class Trainer:
    """Builds the model, data, optimiser and logs of a run; :meth:`fit` trains.

    Args:
        config: a validated :class:`handrecon.train.config.TrainingConfig`.
        out_dir: the run folder (see :mod:`handrecon.train.checkpoint` and :mod:`handrecon.train.logging`).
        resume: continue from ``OUT/checkpoint`` (start fresh, with a notice, if there is none). Without it
            a folder that already holds a checkpoint is refused.

    Raises:
        ConfigError: the config does not fit the model or the data (message names the key), or ``OUT``
            holds a run and ``resume`` is False.
    """

    def __init__(self, config: TrainingConfig, out_dir, resume: bool = False):
        self.config = cfg = config.validate()
        self.out = Path(out_dir)
        self.dist = dist_utils.init_distributed(cfg.train.device)
        self._closed = False
        self._det_before = torch.are_deterministic_algorithms_enabled()
        try:
            self._setup(resume)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        """A notice on rank 0 (kept clear of the progress bar)."""
        if self.dist.is_main:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)

    def _setup(self, resume: bool) -> None:
        cfg, d = self.config, self.dist
        self.device = d.device
        self.amp = bool(cfg.optim.amp and self.device.type == "cuda")
        if cfg.optim.amp and not self.amp:
            self.say("note: optim.amp is ignored on CPU (mixed precision runs on CUDA only)")
        self._configure_determinism()

        checkpoint = find_checkpoint(self.out) if d.is_main else None
        dist_utils.barrier(d)
        if not d.is_main:
            candidate = self.out / "checkpoint"
            checkpoint = candidate if (candidate / "state.pt").is_file() else None
        if checkpoint is not None and not resume:
            raise ConfigError(f"'{self.out}' already holds a training run (checkpoint in {checkpoint}); pass "
                              "--resume to continue it or choose another --out")
        if resume and checkpoint is None:
            self.say(f"note: no checkpoint in '{self.out}'; starting a new run")
            resume = False

        seed_everything(cfg.train.seed)
        if cfg.train.threads:
            torch.set_num_threads(int(cfg.train.threads))
        from handrecon.data import Augmentation, TargetConfig, TrainingTransform
        from handrecon.hand import load_hand_model
        from handrecon.mesh import load_topology
        from handrecon.models import build_model

        try:
            model = build_model(cfg.model.name, **cfg.model.overrides)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config key 'model': {exc}") from None
        if cfg.model.init:
            fresh = _load_init_weights(model, cfg.model.init, partial=cfg.model.init_partial)
            if fresh:
                self.say(f"note: {len(fresh)} tensors are not in model.init and start from scratch: "
                         + ", ".join(fresh[:6]) + (" ..." if len(fresh) > 6 else ""))
        model_size = getattr(model.config, "input_size", None)
        size = cfg.data.input_size or model_size or 128
        if model_size is not None and int(model_size) != int(size):
            raise ConfigError(f"config key 'data.input_size': {size}, but model '{cfg.model.name}' is configured "
                              f"for input_size {model_size}; set model.overrides.input_size: {size} or leave "
                              "data.input_size empty")
        self.input_size = int(size)
        self.model = model.to(self.device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.output_shapes = self._probe_outputs()

        hand = load_hand_model("open")
        topology = load_topology(hand)
        self.objective = Objective(cfg.loss, self.output_shapes, hand, two_view=cfg.data.two_view).to(self.device)
        if not self.objective.weights:
            raise ConfigError(f"config key 'loss': no weighted term applies to model '{cfg.model.name}' (it outputs "
                              f"{sorted(self.output_shapes)})")
        if self.objective.skipped:
            self.say(f"note: loss terms skipped (the model does not output what they need): "
                     f"{', '.join(self.objective.skipped)}")

        heatmap_px = self._target_size("heatmap", "heatmaps", cfg.data.heatmap_size)
        silhouette_px = self._target_size("silhouette", "silhouette", cfg.data.silhouette_size)
        aug = Augmentation(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.data.augmentation.items()})
        common = dict(input_size=self.input_size, heatmap_size=heatmap_px, heatmap_sigma=cfg.data.heatmap_sigma,
                      silhouette_size=silhouette_px, levels=self.objective.max_level, augmentation=aug)
        train_targets = TargetConfig(**common, two_view=cfg.data.two_view, train=True, seed=cfg.train.seed)
        val_targets = TargetConfig(**common, two_view=False, train=False, seed=None)

        self.train_set = build_train_dataset(cfg.data, TrainingTransform(train_targets, topology), cfg.train.seed)
        self.sampler = ShardedBatchSampler(len(self.train_set), cfg.data.batch_size, d.world_size, d.rank,
                                           seed=cfg.train.seed, shuffle=cfg.data.shuffle)
        if len(self.sampler) == 0:
            raise ConfigError(f"config key 'data.batch_size': {len(self.train_set)} training samples make no full "
                              f"batch of {cfg.data.batch_size} per process ({d.world_size} processes)")
        pin = self.device.type == "cuda"
        self.loader = make_train_loader(self.train_set, self.sampler, cfg.data, cfg.train.seed, pin)
        self.val_loader = None
        if cfg.data.val is not None and d.is_main:
            val_set = build_val_dataset(cfg.data, TrainingTransform(val_targets, topology))
            self.val_loader = make_val_loader(val_set, cfg.data, cfg.train.seed, pin)
        self.steps_per_epoch = len(self.sampler)
        self.total_steps = cfg.train.steps if cfg.train.steps is not None else cfg.train.epochs * self.steps_per_epoch

        params = [p for p in self.model.parameters() if p.requires_grad]
        self.params = params
        optim_cls = torch.optim.AdamW if cfg.optim.name == "adamw" else torch.optim.Adam
        self.optimizer = optim_cls(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                   weight_decay=cfg.optim.weight_decay)
        total, per_epoch, optim = self.total_steps, self.steps_per_epoch, cfg.optim
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, optim, total, per_epoch))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

        self.step = self.epoch = self.batch_in_epoch = 0
        self.last_saved_step = None
        self.last_val_step = None
        self.history: list[float] = []
        self.last_val: dict = {}
        if resume:
            self._restore(checkpoint)
        else:
            seed_everything(cfg.train.seed + d.rank)

        self.net = self.model
        if d.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            unused = cfg.train.find_unused_parameters
            if unused is None:
                unused = self._has_unused_parameters()
            self.net = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                           find_unused_parameters=unused)

        self.logger = RunLogger(self.out, enabled=d.is_main, tensorboard=cfg.train.tensorboard,
                                resume_step=self.step if resume else None,
                                title=f"{cfg.model.name} - {self.out.name}")
        if d.is_main:
            with atomic_path(self.out / "config.yaml") as tmp:
                Path(tmp).write_text(config_to_yaml(cfg))

    def _configure_determinism(self) -> None:
        if self.config.train.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _probe_outputs(self) -> dict[str, tuple]:
        """Output names and per-sample shapes of the model (one no-grad forward in eval mode)."""
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(torch.zeros(2, 3, self.input_size, self.input_size, device=self.device))
        except Exception as exc:
            raise ConfigError(f"config key 'model': model '{self.config.model.name}' fails on a "
                              f"{self.input_size}x{self.input_size} input: {exc}") from None
        finally:
            self.model.train(was)
        if not isinstance(out, dict):
            raise ConfigError(f"config key 'model': model '{self.config.model.name}' must return a dict of "
                              f"tensors (see handrecon.models.registry), got {type(out).__name__}")
        return {k: tuple(v.shape[1:]) for k, v in out.items()}

    def _has_unused_parameters(self) -> bool:
        """Whether some trainable parameter feeds none of the outputs the loss uses (DDP must then be told)."""
        was = self.model.training
        self.model.eval()
        try:
            out = self.model(torch.zeros(2, 3, self.input_size, self.input_size, device=self.device))
            total = sum(out[k].float().sum() for k in self.objective.used_outputs if k in out)
            grads = torch.autograd.grad(total, self.params, allow_unused=True)
        finally:
            self.model.train(was)
        return any(g is None for g in grads)

    def _target_size(self, term: str, key: str, configured: int | None) -> int:
        if term not in self.objective.weights:
            return 0
        shape = self.output_shapes[key]
        if shape[-1] != shape[-2]:
            raise ConfigError(f"config key 'data.{term}_size': the model's {key} are {shape[-2]}x{shape[-1]}; only "
                              "square maps are supported")
        if configured is not None and configured != shape[-1]:
            raise ConfigError(f"config key 'data.{term}_size': {configured}, but model '{self.config.model.name}' "
                              f"outputs {key} of {shape[-1]}x{shape[-1]}; leave it empty to follow the model")
        return int(shape[-1])

    # ------------------------------------------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------------------------------------------
    def _state(self, rng: list) -> dict:
        return {
            "format": _CHECKPOINT_FORMAT,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.dist.world_size,
            "batch_size": self.config.data.batch_size,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "config": config_to_dict(self.config),
        }

    def save(self) -> None:
        """Write the resumable checkpoint and ``OUT/model.*`` for the current step (rank 0 writes)."""
        from handrecon.models import save_model

        rng = dist_utils.all_gather_object(get_rng_state(), self.dist)
        if self.dist.is_main:
            extra = {"step": self.step, "epoch": self.epoch, "training_config": config_to_dict(self.config)}
            save_checkpoint(self.out, self.model, self._state(rng), extra)
            save_model(self.model, self.out / "model", extra)
        self.last_saved_step = self.step

    def _restore(self, folder: Path) -> None:
        cfg, d = self.config, self.dist
        try:
            state, weights = load_checkpoint(folder)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot resume from '{folder}': {exc}") from None
        try:
            self.model.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise ConfigError(f"cannot resume from '{folder}': its weights do not fit model "
                              f"'{cfg.model.name}' ({str(exc).splitlines()[0]})") from None
        diffs = config_differences(state.get("config", {}), config_to_dict(cfg), ignore=_RESUME_FREE)
        if diffs:
            self.say("note: resuming with a config that differs from the checkpoint's in: "
                     + "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:8])
                     + (f" (+{len(diffs) - 8} more)" if len(diffs) > 8 else ""))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.amp and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch_in_epoch = int(state["step"]), int(state["epoch"]), \
            int(state["batch_in_epoch"])
        old_world, old_batch = int(state["world_size"]), int(state["batch_size"])
        if (old_world, old_batch) != (d.world_size, cfg.data.batch_size):
            seen = self.batch_in_epoch * old_batch * old_world
            self.batch_in_epoch = seen // (cfg.data.batch_size * d.world_size)
            self.say(f"note: the checkpoint was written with {old_world} process(es) x batch {old_batch}; now "
                     f"{d.world_size} x {cfg.data.batch_size}: continuing at batch {self.batch_in_epoch} of epoch "
                     f"{self.epoch} (not bit-exact)")
        if self.batch_in_epoch >= self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        rng = state["rng"]
        if len(rng) == d.world_size:
            set_rng_state(rng[d.rank])
        else:
            seed_everything(cfg.train.seed + d.rank + self.step)
        self.last_saved_step = self.step
        self.say(f"resumed from '{folder}' at step {self.step} (epoch {self.epoch}, batch {self.batch_in_epoch})")

    # ------------------------------------------------------------------------------------------------------
    # one step
    # ------------------------------------------------------------------------------------------------------
    def _to_device(self, batch: dict) -> dict:
        nb = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=nb) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _images(self, batch: dict) -> torch.Tensor:
        images = batch["image"]
        return images.contiguous(memory_format=torch.channels_last) if self.config.train.channels_last else images

    def _forward(self, batch: dict):
        """(outputs, single-view batch, consistency pairs or None)."""
        pairs_batch = None
        if self.config.data.two_view:
            pairs_batch = {k: batch.pop(k) for k in ("affine_rel", "rotation_rel")}
            batch = {k: v.flatten(0, 1) if isinstance(v, torch.Tensor) and v.ndim >= 1 else v
                     for k, v in batch.items()}
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            out = self.net(self._images(batch))
        out = {k: v.float() for k, v in out.items()}
        pairs = None
        if pairs_batch is not None:
            B = pairs_batch["affine_rel"].shape[0]
            views = {k: v.reshape(B, 2, *v.shape[1:]) for k, v in out.items()}
            pairs = ({k: v[:, 0] for k, v in views.items()}, {k: v[:, 1] for k, v in views.items()}, pairs_batch)
        return out, batch, pairs

    def _diverged(self, what: str, log: dict) -> TrainingError:
        saved = (f"the last checkpoint (step {self.last_saved_step}) is intact" if self.last_saved_step
                 else "no checkpoint had been written")
        return TrainingError(
            f"training stopped at step {self.step + 1}: {what} (loss terms: {_fmt(log)}). Nothing was written for "
            f"this step; {saved}. Try a lower optim.lr, set optim.grad_clip, or check the data.")

    def train_step(self, batch: dict) -> tuple[dict, float]:
        """One optimisation step; returns ({term: value, 'total': value}, learning rate used)."""
        from handrecon.losses import total_loss

        batch = self._to_device(batch)
        out, batch, pairs = self._forward(batch)
        terms = self.objective(out, batch, pairs)
        total, log = total_loss(terms, self.objective.weights)
        finite = torch.tensor([1.0 if all(math.isfinite(v) for v in log.values()) else 0.0])
        if float(dist_utils.all_reduce_min(finite, self.dist)[0]) < 1:
            what = "the loss is not finite" if not all(math.isfinite(v) for v in log.values()) \
                else "the loss is not finite on another process"
            raise self._diverged(what, log)
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.amp:
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.config.optim.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.optim.grad_clip)
        else:
            norm = _total_norm(grads)
        if not self.amp and not bool(torch.isfinite(norm)):  # with AMP the GradScaler skips such steps
            names = [n for n, p in self.model.named_parameters()
                     if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
            raise self._diverged(f"the gradient is not finite (in {', '.join(names[:5])}"
                                 f"{' ...' if len(names) > 5 else ''})", log)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return log, lr

    # ------------------------------------------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------------------------------------------
    def validate(self) -> dict:
        """Metrics on the validation source (rank 0; {} elsewhere or without one), logged to val_log.csv."""
        if self.val_loader is None:
            return {}
        single = {k: w for k, w in self.objective.weights.items() if not k.startswith("consistency")}
        acc = ValidationAccumulator(self.input_size)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for batch in self.val_loader:
                    batch = self._to_device(batch)
                    with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
                        out = self.model(self._images(batch))
                    out = {k: v.float() for k, v in out.items()}
                    terms = self.objective(out, batch, None, terms=single)
                    loss = sum(float(v) * single[k] for k, v in terms.items())
                    acc.add(out, batch, self.objective, loss)
        finally:
            self.model.train(was)
        summary = acc.summary()
        self.logger.log_val({"step": self.step, "epoch": self.epoch, **summary})
        self.last_val, self.last_val_step = summary, self.step
        return summary

    # ------------------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to ``train.steps`` (or ``train.epochs``); returns a summary dict."""
        from tqdm import tqdm

        cfg, d = self.config, self.dist
        t = cfg.train
        terms = list(self.objective.weights)
        images_per_step = cfg.data.batch_size * d.world_size
        if self.step >= self.total_steps:
            self.say(f"nothing to do: the run is at step {self.step} of {self.total_steps}")
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (d.is_main and t.progress), unit="step",
                   dynamic_ncols=True, file=sys.stderr, desc=f"train {cfg.model.name}")
        sums: dict[str, float] = {}
        count, t0 = 0, time.perf_counter()
        try:
            while self.step < self.total_steps:
                self.sampler.set_epoch(self.epoch)
                self.sampler.set_start(self.batch_in_epoch)
                for batch in self.loader:
                    log, lr = self.train_step(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    if self.batch_in_epoch >= self.steps_per_epoch:
                        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    self.history.append(log["total"])
                    for k, v in log.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                    bar.update(1)
                    last = self.step >= self.total_steps
                    if t.log_every and (self.step % t.log_every == 0 or last):
                        elapsed = max(time.perf_counter() - t0, 1e-9)
                        keys = sorted(sums)
                        packed = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64)
                        packed = dist_utils.all_reduce_sum(packed, d)
                        n = float(packed[-1])
                        mean = {k: float(packed[i]) / n for i, k in enumerate(keys)}
                        rate = images_per_step * count / elapsed
                        row = {"step": self.step, "epoch": self.epoch, "total": mean.pop("total"), **mean,
                               "lr": lr, "images_per_s": rate}
                        self.logger.log_train(row, terms)
                        bar.set_postfix(loss=f"{row['total']:.4g}", img_s=f"{rate:.1f}", refresh=False)
                        sums, count, t0 = {}, 0, time.perf_counter()
                    elif not t.log_every:
                        bar.set_postfix(loss=f"{log['total']:.4g}", refresh=False)
                    paused = time.perf_counter()
                    if t.val_every and self.step % t.val_every == 0:
                        self.validate()
                    if t.checkpoint_every and self.step % t.checkpoint_every == 0:
                        self.save()
                    t0 += time.perf_counter() - paused  # images/s counts training time only
                    if last:
                        break
            if self.last_saved_step != self.step:
                self.save()
            if self.val_loader is not None and self.last_val_step != self.step:
                self.validate()
            dist_utils.barrier(d)
        finally:
            bar.close()
        if d.is_main:
            self.say(f"done: step {self.step}; model in {self.out / 'model.safetensors'}"
                     + (f"; validation: {_fmt({k: v for k, v in self.last_val.items() if k != 'samples'})}"
                        if self.last_val else ""))
        return {"step": self.step, "epoch": self.epoch, "total_steps": self.total_steps, "history": self.history,
                "val": self.last_val, "out": str(self.out)}

    def close(self) -> None:
        """Stop loader workers, close logs, leave the process group (if this trainer joined it)."""
        if self._closed:
            return
        self._closed = True
        for name in ("loader", "val_loader"):
            loader = getattr(self, name, None)
            iterator = getattr(loader, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
            setattr(self, name, None)
        logger = getattr(self, "logger", None)
        if logger is not None:
            logger.close()
        if self.config.train.deterministic:
            torch.use_deterministic_algorithms(self._det_before)
        dist_utils.shutdown_distributed(self.dist)


def train(config: TrainingConfig, out, resume: bool = False) -> dict:
    """Train ``config`` into the run folder ``out`` (see :class:`Trainer`); returns :meth:`Trainer.fit`'s summary.

    Raises:
        ConfigError: the config does not fit (exit code 2 in the CLI).
        TrainingError: training diverged (non-finite loss or gradient).
    """
    trainer = Trainer(config, out, resume=resume)
    try:
        return trainer.fit()
    finally:
        trainer.close()
