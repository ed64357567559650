"""translation_admin: fairseq's translation task plus Admin profiling before training starts.

When fairseq-train builds an ``admin_transformer`` with ``--admin-init profile`` (the default), the
task profiles the fresh model on the first training batch (arXiv:2004.08249, section 4.3), sets ω on
every rank, writes the profile (one writer), and training goes on as usual. The profile happens
before the trainer builds its optimizer, so fp16 master weights start from the profiled ω.
"""
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional

from fairseq import metrics, utils
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import II

from . import distributed
from .dependency import DependencyMeter
from .fp16_audit import Fp16Audit
from .errors import AdminError
from .model import AdminTransformerModel
from .profile_file import (
    apply_profile,
    check_profile_matches,
    format_table,
    profile_from_dict,
    read_profile,
    write_profile,
)
from .profiler import profile_model

logger = logging.getLogger(__name__)

DEFAULT_PROFILE_NAME = "admin_profile.json"


@dataclass
class TranslationAdminConfig(TranslationConfig):
    admin_profile: Optional[str] = field(default=None, metadata={
        "help": "Admin profile to initialise ω from (JSON, or the reference's legacy text format); "
                "with --admin-profile-only, where to write it. Default: profile now and write "
                f"{DEFAULT_PROFILE_NAME} in --save-dir"})
    admin_profile_only: bool = field(default=False, metadata={
        "help": "profile the fresh model, write the profile and exit (status 0) before any update"})
    admin_profile_skip_padding: bool = field(default=False, metadata={
        "help": "measure profiling variances over real tokens only (the reference includes padding)"})
    admin_log_omega: int = field(default=0, metadata={
        "help": "every N updates, log the mean/min/max of ω per stack (omega_enc_mean, ... in fairseq's "
                "train log and tensorboard); 0: never"})
    admin_log_dependency: int = field(default=0, metadata={
        "help": "every N updates (and at update 0), log each residual sublayer's branch dependency "
                "beta2 = Var(F(r)) / Var(omega*r + F(r)) on that update's batch (beta2_enc_01_attn, ..., "
                "beta2_enc_mean, beta2_dec_mean in the train log and tensorboard); any fairseq Transformer "
                "(Admin, DeepNorm, Post-LN, Pre-LN); measured during the step, no extra forward; 0: never"})
    admin_fp16_audit: bool = field(default=False, metadata={
        "help": "fp16 audit of this (fp32) run: at every update, whether fairseq's --fp16 would have overflowed "
                "(parameter or activation gradients times the simulated dynamic loss scale, activations, against "
                "65504), the fraction of gradients it would flush to zero, and the loss scale that implies "
                "(fairseq's own scaler with this run's --fp16-* settings); written to fp16_audit.tsv in --save-dir "
                "and logged as fp16_scale, fp16_overflow, fp16_underflow"})
    # read from the rest of fairseq's configuration, to pick the same first batch as the trainer
    seed: int = II("common.seed")
    cpu: bool = II("common.cpu")
    max_tokens: Optional[int] = II("dataset.max_tokens")
    batch_size: Optional[int] = II("dataset.batch_size")
    required_batch_size_multiple: int = II("dataset.required_batch_size_multiple")
    update_ordered_indices_seed: bool = II("dataset.update_ordered_indices_seed")
    grouped_shuffling: bool = II("dataset.grouped_shuffling")
    skip_remainder_batch: bool = II("optimization.skip_remainder_batch")
    save_dir: str = II("checkpoint.save_dir")
    no_save: bool = II("checkpoint.no_save")
    restore_file: str = II("checkpoint.restore_file")
    checkpoint_suffix: str = II("checkpoint.checkpoint_suffix")
    continue_once: Optional[str] = II("checkpoint.continue_once")
    finetune_from_model: Optional[str] = II("checkpoint.finetune_from_model")
    ddp_backend: str = II("distributed_training.ddp_backend")
    # the dynamic loss scaler the fp16 audit simulates, as fairseq's FP16Optimizer builds it
    fp16: bool = II("common.fp16")
    fp16_init_scale: int = II("common.fp16_init_scale")
    fp16_scale_window: Optional[int] = II("common.fp16_scale_window")
    fp16_scale_tolerance: float = II("common.fp16_scale_tolerance")
    threshold_loss_scale: Optional[float] = II("common.threshold_loss_scale")
    min_loss_scale: float = II("common.min_loss_scale")
    distributed_world_size: int = II("distributed_training.distributed_world_size")
    update_freq: List[int] = II("optimization.update_freq")


@register_task("translation_admin", dataclass=TranslationAdminConfig)
class TranslationAdminTask(TranslationTask):
    """Translation with Admin initialisation (profiled ω) of admin_transformer models."""

    cfg: TranslationAdminConfig
    profile_written = False  # whether this process wrote the profile file

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        for option in ("admin_log_omega", "admin_log_dependency"):
            if getattr(cfg, option) < 0:
                flag = "--" + option.replace("_", "-")
                raise AdminError(f"{flag} {getattr(cfg, option)}: give a number of updates (N > 0), or 0 for never")
        check_data_folder(cfg)
        return super().setup_task(cfg, **kwargs)

    def build_model(self, cfg, from_checkpoint=False):
        if not from_checkpoint:  # fairseq-train builds a fresh model; generate & co. build from a checkpoint
            self.check_restore_file()
            if not self.cfg.no_save and distributed.is_master():
                lock_save_dir(self.cfg.save_dir)
        model = super().build_model(cfg, from_checkpoint)
        resuming = None if from_checkpoint else self.resuming()
        if resuming:
            check_resume_shapes(model, resuming)
        if not isinstance(model, AdminTransformerModel):
            if self.cfg.admin_profile or self.cfg.admin_profile_only:
                arch = getattr(cfg, "arch", None) or getattr(cfg, "_name", None)
                raise AdminError(f"--admin-profile/--admin-profile-only need an Admin model, but --arch {arch} has no "
                                 "ω: use an admin_transformer* architecture, or drop those options")
            return model  # a plain transformer has no ω
        if from_checkpoint:
            return model  # ω comes from the checkpoint
        profiling = model.admin_init == "profile"
        if not profiling and (self.cfg.admin_profile or self.cfg.admin_profile_only):
            raise AdminError(f"--admin-profile/--admin-profile-only need --admin-init profile, "
                             f"not {model.admin_init}")
        if profiling:
            self.initialize_omegas(model, arch=getattr(cfg, "arch", None) or getattr(cfg, "_name", None))
        if self.cfg.admin_profile_only:
            distributed.barrier()
            logger.info("--admin-profile-only: profile written, exiting before any update")
            sys.exit(0)
        return model

    fp16_audit = None  # the Fp16Audit of this run, made at the first training step with --admin-fp16-audit

    def _audit(self, update_num):
        if self.fp16_audit is None:
            cfg = self.cfg
            if cfg.fp16:
                raise AdminError("--admin-fp16-audit simulates fp16 on an fp32 run: drop --fp16 (fairseq's own "
                                 "loss scale is then in its log)")
            window = cfg.fp16_scale_window
            if window is None:  # fairseq's FP16Optimizer default
                window = int(2 ** 14 / cfg.distributed_world_size / cfg.update_freq[0])
            path = os.path.join(cfg.save_dir, "fp16_audit.tsv") if distributed.is_master() else None
            if path is not None:
                os.makedirs(cfg.save_dir, exist_ok=True)
            self.fp16_audit = Fp16Audit(path, cfg.fp16_init_scale, window, cfg.fp16_scale_tolerance,
                                        cfg.threshold_loss_scale, cfg.min_loss_scale)
            if self._resumed_audit is not None:
                self.fp16_audit.load_state_dict(*self._resumed_audit)
            else:  # no simulated scaler in the checkpoint (none, or one without the audit): a new simulation
                self.fp16_audit.drop_after(update_num)
        return self.fp16_audit

    _resumed_audit = None

    def get_checkpoint_dict(self):
        """What fairseq saves for this task in each checkpoint: the fp16 audit's simulated scaler."""
        if self.fp16_audit is None:
            return {}
        return {type(self).__name__: {"fp16_audit": self.fp16_audit.state_dict()}}

    def set_checkpoint_dict(self, state):
        if state.get("fp16_audit") is not None:
            self._resumed_audit = (state["fp16_audit"], state["fp16_audit"]["_iter"])

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        every = self.cfg.admin_log_dependency
        audit = self._audit(update_num) if self.cfg.admin_fp16_audit else None
        with (audit.wrap(model) if audit is not None else contextlib.nullcontext()):
            if every and update_num % every == 0:
                with DependencyMeter(model) as meter:
                    out = super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
                meter.log(update_num)
            else:
                out = super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        if audit is not None:
            audit.after_backward(model)
        every = self.cfg.admin_log_omega
        if every and update_num % every == 0:
            log_omega_stats(model)
        return out

    def optimizer_step(self, optimizer, model, update_num):
        super().optimizer_step(optimizer, model, update_num)
        if self.fp16_audit is not None:
            self.fp16_audit.end_update(update_num + 1)

    def check_restore_file(self) -> None:
        """An explicit --restore-file that does not exist, with a run in --save-dir: fairseq would start
        from scratch and overwrite that run's checkpoints. Refused before anything is written."""
        cfg = self.cfg
        if cfg.restore_file == "checkpoint_last.pt" or self.resuming():
            return
        last = os.path.join(cfg.save_dir, f"checkpoint_last{cfg.checkpoint_suffix or ''}.pt")
        if os.path.exists(last):
            raise AdminError(f"--restore-file {cfg.restore_file} does not exist, and {cfg.save_dir} holds a run "
                             f"({os.path.basename(last)}) that starting from scratch would overwrite: fix the path, "
                             "drop --restore-file to resume that run, or use another --save-dir")

    # --- profiling -----------------------------------------------------------------------------
    def profile_path(self) -> str:
        return self.cfg.admin_profile or os.path.join(self.cfg.save_dir, DEFAULT_PROFILE_NAME)

    def resuming(self) -> Optional[str]:
        """The checkpoint fairseq-train is about to load (so ω will come from it), if any: decided as
        fairseq's checkpoint_utils.load_checkpoint decides (checkpoint_last{suffix}.pt in --save-dir,
        else --continue-once or --finetune-from-model on a first launch; another --restore-file with
        the suffix)."""
        cfg, suffix = self.cfg, self.cfg.checkpoint_suffix or ""
        if cfg.restore_file == "checkpoint_last.pt":
            path = os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")
            if not os.path.exists(path):
                path = cfg.continue_once or cfg.finetune_from_model or path
        else:
            path = cfg.restore_file.replace(".pt", suffix + ".pt") if suffix else cfg.restore_file
        return path if os.path.exists(path) else None

    def initialize_omegas(self, model: AdminTransformerModel, arch: Optional[str] = None) -> None:
        # rank 0 decides (resume, profile file or profiling) from its own disk and data, and every rank
        # applies the very same decision and floats
        def decide():
            if not self.cfg.admin_profile_only:
                checkpoint = self.resuming()
                if checkpoint:
                    return {"resume": checkpoint}
                if self.cfg.admin_profile:
                    path = self.cfg.admin_profile
                    if not os.path.exists(path):
                        raise AdminError(
                            f"--admin-profile {path} does not exist: create it first with "
                            "--admin-profile-only, or drop --admin-profile to profile in this run")
                    profile = read_profile(path, layers=(len(model.encoder.layers), len(model.decoder.layers)))
                    check_profile_matches(profile, model, path)
                    return {"file": path, "profile": profile.to_dict()}
            if self.cfg.ddp_backend == "fully_sharded":
                # rank 0's lone forward would need every rank's shards of the FSDP-wrapped layers: a hang
                raise AdminError("profiling cannot run under --ddp-backend fully_sharded: profile first in one "
                                 "process (same model, --admin-profile-only --admin-profile FILE, another "
                                 "--ddp-backend), then train with --admin-profile FILE")
            start = time.perf_counter()
            profile = self.profile_on_first_batch(model)
            return {"profile": profile.to_dict(), "seconds": time.perf_counter() - start}

        decision = distributed.decide_on_master(decide)
        if "resume" in decision:
            logger.info(f"resuming from {decision['resume']}: ω comes from the checkpoint, not profiling")
            return
        profile = profile_from_dict(decision["profile"], decision.get("file", "<profile from rank 0>"))
        apply_profile(profile, model)
        if "file" in decision:
            logger.info(f"Admin ω from {decision['file']} ({profile.source}):\n{format_table(profile)}")
            return
        profile.arch = arch
        path = self.profile_path()
        if distributed.is_master():
            write_profile(profile, path)
            self.profile_written = True
        logger.info(f"Admin profile ({profile.tokens} tokens, {profile.sentences} sentences, seed "
                    f"{profile.seed}, {decision['seconds']:.2f} s including loading the batch) written to "
                    f"{path}:\n{format_table(profile)}")

    def first_training_batch(self, model):
        """The batch that fairseq's trainer will hand rank 0 first (same iterator settings)."""
        cfg = self.cfg
        split = cfg.train_subset
        try:
            self.load_dataset(split, epoch=1, combine=True)
        except FileNotFoundError as e:
            raise AdminError(f"profiling needs training data, but {e}: binarize a '{split}' split "
                             "with fairseq-preprocess --trainpref, or pass --admin-profile FILE")
        itr = self.get_batch_iterator(
            dataset=self.dataset(split),
            max_tokens=cfg.max_tokens,
            max_sentences=cfg.batch_size,
            max_positions=utils.resolve_max_positions(self.max_positions(), model.max_positions(),
                                                      cfg.max_tokens),
            ignore_invalid_inputs=True,
            required_batch_size_multiple=cfg.required_batch_size_multiple,
            seed=cfg.seed + 1 if cfg.update_ordered_indices_seed else cfg.seed,
            num_shards=distributed.world_size(),
            shard_id=0,
            epoch=1,
            disable_iterator_cache=True,  # leave fairseq's cached iterator untouched
            skip_remainder_batch=cfg.skip_remainder_batch,
            grouped_shuffling=cfg.grouped_shuffling,
        )
        batches = itr.next_epoch_itr(shuffle=True)
        if not batches.has_next():
            size, multiple = len(self.dataset(split)), cfg.required_batch_size_multiple
            if 0 < size < multiple:  # fairseq's batching drops a last batch smaller than the multiple
                raise AdminError(f"the '{split}' split has {size} sentences, fewer than --required-batch-size-"
                                 f"multiple {multiple}, and fairseq makes no batch of them: use more training "
                                 "data, or --required-batch-size-multiple 1")
            raise AdminError(f"the '{split}' split gave no batch to profile (all too long for "
                             "--max-tokens/--max-positions?)")
        return next(batches)

    def profile_on_first_batch(self, model):
        import torch

        sample = self.first_training_batch(model)
        device = next(model.parameters()).device
        use_cuda = torch.cuda.is_available() and not self.cfg.cpu
        if use_cuda:  # profile in fp32 on the GPU, then hand the model back where it was
            model.cuda()
            sample = utils.move_to_cuda(sample)
        try:
            return profile_model(model, sample, seed=self.cfg.seed,
                                 skip_padding=self.cfg.admin_profile_skip_padding)
        finally:
            model.to(device)


def log_omega_stats(model) -> None:
    """Log mean/min/max of ω per stack into fairseq's metrics (train log lines, tensorboard)."""
    while hasattr(model, "module") and not isinstance(model, AdminTransformerModel):
        model = model.module  # distributed wrappers
    if not isinstance(model, AdminTransformerModel):
        return
    import torch

    with torch.no_grad():
        for stack, short in (("encoder", "enc"), ("decoder", "dec")):
            omega = torch.cat([s.omega.detach().float().flatten() for s in model.residual_scales(stack)])
            for stat, value in (("mean", omega.mean()), ("min", omega.min()), ("max", omega.max())):
                metrics.log_scalar(f"omega_{short}_{stat}", value.item(), weight=0, round=3)


def check_resume_shapes(model, path: str) -> None:
    """Resuming into a model of another depth or width: one line naming the differences, before
    fairseq's own load fails with a traceback (reads the checkpoint memory-mapped: no full load)."""
    import torch

    try:  # weights-only: importing the plugin allowed fairseq's checkpoint types
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 -- unreadable or refused: fairseq's load (and its one-line errors) decide
        return
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        return
    saved = {k: tuple(v.shape) for k, v in state["model"].items() if hasattr(v, "shape")}
    built = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(built) - set(saved))
    differ = sorted(k for k in set(built) & set(saved) if built[k] != saved[k])
    if not missing and not differ:
        return
    layers = lambda names, stack: len({k.split(".")[2] for k in names if k.startswith(f"{stack}.layers.")})  # noqa: E731
    what = (f"the checkpoint has {layers(saved, 'encoder')}-{layers(saved, 'decoder')} layers, this model "
            f"{layers(built, 'encoder')}-{layers(built, 'decoder')}")
    if differ:
        k = differ[0]
        what += f"; {k} is {'x'.join(map(str, saved[k]))} there, {'x'.join(map(str, built[k]))} here"
    raise AdminError(f"cannot resume from {path}: it was trained with another architecture ({what}): resume "
                     "with the run's own depth and width flags, or start a new run in another --save-dir")


_HELD_LOCKS = {}  # save dir -> open lock file, for the life of this process


def lock_save_dir(save_dir: str) -> None:
    """One trainer per save dir: an exclusive lock on SAVE_DIR/.fairseq-admin.lock for the life of this
    process (the OS releases it when the process ends, however it ends, so a dead holder's lock is taken
    over); a second trainer stops with one line naming the first."""
    import fcntl
    import socket

    path = os.path.join(os.path.abspath(save_dir), ".fairseq-admin.lock")
    if path in _HELD_LOCKS:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        f = open(path, "a+")
    except OSError as e:
        raise AdminError(f"cannot use --save-dir {save_dir}: {e.strerror}: give a writable folder")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise AdminError(f"{save_dir} is in use by another trainer ({holder}): two runs in one --save-dir would "
                         "overwrite each other's checkpoints and profile; wait for it to end, or use another --save-dir")
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    _HELD_LOCKS[path] = f


def check_data_folder(cfg) -> None:
    """One clear error for a missing or empty binarized data folder, before fairseq's own traceback."""
    from fairseq.data import data_utils

    paths = utils.split_paths(cfg.data) if cfg.data else []
    how = "binarize your corpus with fairseq-preprocess (e.g. scripts/binarize.sh) and pass that folder"
    if not paths or not os.path.isdir(paths[0]):
        raise AdminError(f"data folder {cfg.data!r} does not exist: {how}")
    src, tgt = cfg.source_lang, cfg.target_lang
    if src is None or tgt is None:
        src, tgt = data_utils.infer_language_pair(paths[0])
        if src is None or tgt is None:
            raise AdminError(f"{paths[0]} holds no binarized translation data (no *.src-tgt.*.idx files): {how}")
    for lang in (src, tgt):
        if not os.path.isfile(os.path.join(paths[0], f"dict.{lang}.txt")):
            raise AdminError(f"{paths[0]} has no dict.{lang}.txt: {how}")
