"""Profiling: the recursion replayed from captured sublayer tensors, determinism, bad batches."""
import json
import math
import os

import pytest
import torch

from conftest import build
from fairseq_admin import AdminError
from fairseq_admin.profiler import profile_model
from fairseq_admin.task import TranslationAdminTask


def _batch(task, n=8):
    task.load_dataset("valid")
    ds = task.dataset("valid")
    return ds.collater([ds[i] for i in range(n)])


def test_profile_reproduces_the_recursion_from_captured_tensors(bin_data):
    _, task, model = build(bin_data, "--admin-init", "ones")  # ω = 1: nothing set yet
    sample = _batch(task)
    profile = profile_model(model, sample, seed=11)
    # replay the same forward (same seed -> same dropout masks) with the profiled ω, and capture
    # every sublayer's shortcut and branch as it enters the residual
    captured = {"encoder": [], "decoder": []}
    hooks = [scale.register_forward_hook(lambda m, inp, out, st=stack: captured[st].append(
        (inp[0].double(), inp[1].double(), m.omega.detach().double().clone())))
        for stack in captured for scale in model.residual_scales(stack)]
    model.train()
    with torch.no_grad():
        torch.manual_seed(11)
        model(**sample["net_input"])
    for h in hooks:
        h.remove()
    for stack, tensors in captured.items():
        c = 1.0  # the recursion, computed here independently of the profiler
        for (shortcut, branch, omega), stat in zip(tensors, profile.stack(stack).sublayers):
            assert torch.allclose(omega, torch.full_like(omega, c))
            assert stat.omega == pytest.approx(c, rel=1e-6)
            var_s = (shortcut * omega).var(unbiased=False).item()
            var_b = branch.var(unbiased=False).item()
            assert stat.var_shortcut == pytest.approx(var_s, rel=1e-5)
            assert stat.var_branch == pytest.approx(var_b, rel=1e-5)
            c = math.sqrt(var_s + var_b)
        assert len(tensors) == len(profile.stack(stack).sublayers)
    assert profile.stack("decoder").sublayers[3].omega > 1.0


def test_profiling_is_deterministic_and_leaves_rng_alone(bin_data):
    _, task, m1 = build(bin_data, "--admin-init", "ones")
    _, _, m2 = build(bin_data, "--admin-init", "ones")
    sample = _batch(task)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    p1 = profile_model(m1, sample, seed=3).to_dict()
    assert torch.equal(torch.get_rng_state(), state)
    p2 = profile_model(m2, sample, seed=3).to_dict()
    assert json.dumps(p1) == json.dumps(p2)  # bit for bit
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)


def test_skip_padding_measures_fewer_positions(bin_data):
    _, task, model = build(bin_data, "--admin-init", "ones")
    sample = _batch(task, 16)
    assert sample["net_input"]["src_tokens"].eq(model.encoder.padding_idx).any()
    with_pad = profile_model(model, sample, seed=1)
    without = profile_model(model, sample, seed=1, skip_padding=True)
    assert without.padding == "excluded"
    assert with_pad.encoder.sublayers[0].var_input != pytest.approx(without.encoder.sublayers[0].var_input)


def test_nan_and_zero_variance_batches_are_rejected(bin_data):
    _, task, model = build(bin_data, "--admin-init", "ones")
    sample = _batch(task)
    with torch.no_grad():
        model.encoder.embed_tokens.weight.fill_(float("nan"))
    with pytest.raises(AdminError, match="encoder layer 0 self_attn.*NaN"):
        profile_model(model, sample, seed=1)
    _, _, model = build(bin_data, "--admin-init", "ones")
    with torch.no_grad():
        attn = model.encoder.layers[0].self_attn
        attn.out_proj.weight.zero_()
        attn.out_proj.bias.zero_()
    with pytest.raises(AdminError, match="encoder layer 0 self_attn: the branch output variance is 0"):
        profile_model(model, sample, seed=1)


def test_task_profiles_the_trainers_first_batch(bin_data, tmp_path):
    from fairseq.trainer import Trainer

    cfg, task, model = build(bin_data, "--save-dir", tmp_path)
    assert isinstance(task, TranslationAdminTask) and task.profile_written
    assert os.path.exists(tmp_path / "admin_profile.json")
    ours = task.first_training_batch(model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    theirs = next(trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=True))
    assert torch.equal(ours["id"], theirs["id"])
    assert torch.equal(ours["net_input"]["src_tokens"], theirs["net_input"]["src_tokens"])


def test_fsdp_profiling_is_refused_and_activation_checkpointing_profiles(bin_data):
    from fairseq_admin import AdminError
    with pytest.raises(AdminError, match="profiling cannot run under --ddp-backend fully_sharded"):
        build(bin_data, "--ddp-backend", "fully_sharded")
    # --checkpoint-activations wraps every layer: profiling still sees all sublayers, same ω as without
    _, _, wrapped = build(bin_data, "--checkpoint-activations")
    _, _, plain = build(bin_data)
    for stack in ("encoder", "decoder"):
        a = [s.omega[0].item() for s in wrapped.residual_scales(stack)]
        b = [s.omega[0].item() for s in plain.residual_scales(stack)]
        assert a == pytest.approx(b, rel=1e-6) and a[-1] > 1.0


def test_a_train_split_smaller_than_the_batch_multiple_is_named(bin_data, tmp_path):
    # fairseq's batching drops a last batch smaller than --required-batch-size-multiple: with 5 training
    # sentences and the default 8 it makes no batch at all; the error says so, and multiple 1 profiles
    from conftest import SAMPLE, run_cli
    raw = tmp_path / "raw"
    raw.mkdir()
    for lang in ("de", "en"):
        with open(os.path.join(SAMPLE, f"train.{lang}"), encoding="utf-8") as f:
            (raw / f"train.{lang}").write_text("".join(next(f).lower() for _ in range(5)), encoding="utf-8")
    dest = tmp_path / "bin"
    run_cli("fairseq_cli.preprocess", "--source-lang", "de", "--target-lang", "en", "--trainpref", raw / "train",
            "--destdir", dest, "--srcdict", os.path.join(bin_data, "dict.de.txt"),
            "--tgtdict", os.path.join(bin_data, "dict.en.txt"), "--workers", "1")
    with pytest.raises(AdminError, match="has 5 sentences, fewer than --required-batch-size-multiple 8"):
        build(str(dest))
    _, task, _ = build(str(dest), "--required-batch-size-multiple", "1")
    assert task.profile_written
