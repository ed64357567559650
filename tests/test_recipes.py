"""Recipes: config arithmetic, command lines against the spec's table, offline download/extract,
and the scripts end to end on tiny settings with archives laid out like the real ones."""
import io
import os
import re
import subprocess
import tarfile

import pytest
import torch

from conftest import ROOT, SAMPLE, run_killed_when
from fairseq_admin import AdminError
from fairseq_admin.tools.datasets import fetch
from fairseq_admin.tools.recipe import batch_split, compose, generate_command, hydra_command, load_recipe, train_command

IWSLT = os.path.join(ROOT, "configs", "iwslt14_de_en")
WMT = os.path.join(ROOT, "configs", "wmt14_en_de")
TINY_EXTRA = ("--encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 32 --decoder-embed-dim 32 "
              "--encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64 --encoder-attention-heads 2 "
              "--decoder-attention-heads 2 --max-tokens 1500 --max-epoch 2 --num-workers 0")
GEN_EXTRA = "--max-len-b 20 --batch-size 64"


@pytest.mark.parametrize("freq,tokens,gpus,expected", [
    (4, 8192, 1, (8192, 4)), (4, 8192, 2, (8192, 2)), (4, 8192, 4, (8192, 1)),
    (4, 8192, 8, (4096, 1)), (4, 8192, 3, (5461, 2)), (1, 4096, 1, (4096, 1)), (1, 4096, 2, (2048, 1)),
])
def test_effective_batch_is_kept(freq, tokens, gpus, expected):
    per_gpu, update_freq = batch_split(freq, tokens, gpus)
    assert (per_gpu, update_freq) == expected
    assert abs(per_gpu * update_freq * gpus - freq * tokens) < gpus * update_freq


def _flags(cmd):
    out, i = {}, 0
    while i < len(cmd):
        if cmd[i].startswith("--"):
            has_value = i + 1 < len(cmd) and not cmd[i + 1].startswith("--")
            out[cmd[i]] = cmd[i + 1] if has_value else True
            i += 2 if has_value else 1
        else:
            i += 1
    return out


# the reference table of the spec (section 5)
SPEC = {
    "iwslt14_de_en": {"--lr": 7e-4, "--warmup-updates": 6000, "--dropout": 0.3, "--weight-decay": 1e-4,
                      "tokens": 4096 * 1, "--max-update": 100000, "beam": 5, "lenpen": 1.0},
    "wmt14_en_de": {"--lr": 1e-3, "--warmup-updates": 8000, "--dropout": 0.1, "--weight-decay": 0.0,
                    "tokens": 8192 * 4, "--max-update": 500000, "beam": 4, "lenpen": 0.6},
}


@pytest.mark.parametrize("config", [IWSLT, WMT])
def test_every_variant_matches_the_reference_table(config):
    recipe = load_recipe(config)
    spec = SPEC[recipe["name"]]
    for variant, v in recipe["variants"].items():
        for gpus in (1, 2, 8):
            f = _flags(train_command(recipe, variant, "D", "S", gpus=gpus))
            method = variant.rsplit("-", 2)[0]
            tfixup = method == "tfixup"  # no warmup: the rate decays from the start, over P = the warmup
            for key in ("--lr", "--dropout", "--weight-decay", "--max-update"):
                assert float(f[key]) == spec[key], (variant, key)
            assert float(f["--warmup-updates"]) == (0 if tfixup else spec["--warmup-updates"]), variant
            if tfixup:
                assert float(f["--decay-period"]) == spec["--warmup-updates"], variant
            assert int(f["--max-tokens"]) * int(f["--update-freq"]) * int(f["--distributed-world-size"]) \
                == pytest.approx(spec["tokens"], abs=16)
            assert f["--optimizer"] == "radam" and f["--adam-betas"] == "(0.9,0.98)"
            assert float(f["--clip-norm"]) == 0
            assert f["--lr-scheduler"] == ("inverse_sqrt_nowarmup" if tfixup else "inverse_sqrt"), variant
            assert float(f["--warmup-init-lr"]) == 1e-7 and float(f["--label-smoothing"]) == 0.1
            assert float(f["--attention-dropout"]) == 0.1 and float(f["--activation-dropout"]) == 0.1
            assert f["--share-all-embeddings"] and f["--fp16"] and f["--seed"] == "1111"
            # the reference's fp16 loss scaling
            assert f["--fp16-scale-window"] == "256" and float(f["--threshold-loss-scale"]) == 0.03125
            # baselines initialised as Admin (the reference's init): one thing differs
            prefix = {"admin": "admin_", "postln": "refinit_", "preln": "refinit_"}.get(
                method, method.replace("-", "_") + "_transformer")
            assert f["--arch"].startswith(prefix), variant
            assert f["--task"] == ("translation_admin" if variant.startswith("admin") else "translation")
            assert ("--encoder-normalize-before" in f) == variant.startswith("preln")
            assert [f["--encoder-layers"], f["--decoder-layers"]] == variant.rsplit("-", 2)[-2:]
            # the reference's shapes: transformer_iwslt_de_en (512, ffn 1024, 4 heads), _wmt_en_de (512, 2048, 8)
            shape = ["512", "1024", "4"] if recipe["name"] == "iwslt14_de_en" else ["512", "2048", "8"]
            for side in ("encoder", "decoder"):
                assert [f[f"--{side}-embed-dim"], f[f"--{side}-ffn-embed-dim"], f[f"--{side}-attention-heads"]] == shape
        g = _flags(generate_command(recipe, "D", "ck.pt"))
        assert int(g["--beam"]) == spec["beam"] and float(g["--lenpen"]) == spec["lenpen"]
        assert g["--remove-bpe"] is True
    if recipe["name"] == "wmt14_en_de":
        assert float(f["--stop-min-lr"]) == 1e-9 and f["--keep-last-epochs"] == "10"
        assert recipe["average"] == {"last_epochs": 10, "upper_epoch": 100}
        assert recipe["paper_bleu"]["admin-60-12"].startswith("not comparable")
    else:
        assert recipe["seeds"] == [1111, 2222, 3333, 4444, 5555] and "--keep-last-epochs" not in f
        assert recipe["average"] == {"last_epochs": 10, "upper_epoch": 90}


@pytest.mark.parametrize("config", [IWSLT, WMT])
def test_recipe_config_is_the_one_source(config):
    # the config is composed as fairseq-hydra-train composes it, and the fairseq-train line made from it
    # sets every one of its values: parsed back by fairseq, each equals the YAML's
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    recipe = load_recipe(config)
    assert recipe["config"].common.seed == recipe["seeds"][0]
    for variant in recipe["variants"]:
        ours = compose(recipe, variant, "D", "S", user_dir="U")
        with initialize_config_dir(config_dir=config, version_base="1.1"):  # what fairseq runs hydra as
            theirs = hydra_compose("train", overrides=[f"variant={variant}", "common.user_dir=U", "task.data=D",
                                                        "checkpoint.save_dir=S"])
        theirs = OmegaConf.to_container(theirs, resolve=True)  # with fairseq's schema's defaults, if registered
        assert {section: {k: theirs[section][k] for k in values} for section, values in ours.items()} == ours
        cmd = train_command(recipe, variant, "D", "S", gpus=1)
        args = options.parse_args_and_arch(options.get_training_parser(), cmd[1:])
        parsed = convert_namespace_to_omegaconf(args)
        for section, values in ours.items():
            for key, value in values.items():
                if key == "user_dir":
                    continue
                got = getattr(parsed[section], key, None) if section == "model" else parsed[section][key]
                if key == "_name" and section == "model":
                    got = args.arch
                assert (list(got) if OmegaConf.is_list(got) else got) == value, (variant, section, key)
        assert hydra_command(recipe, variant, "D", "S", gpus=8)[-1] == "distributed_training.distributed_world_size=8"


def test_fairseq_hydra_train_runs_the_recipe_config(bin_data, tmp_path):
    # the IWSLT recipe, as fairseq users run configs: fairseq-hydra-train on configs/iwslt14_de_en, the
    # variant chosen as a config group, a tiny model on the CPU
    import sys
    recipe = load_recipe(IWSLT)
    save = tmp_path / "ck"
    cmd = hydra_command(recipe, "admin-6-6", bin_data, str(save), cpu=True, extra=[
        "model.encoder_layers=1", "model.decoder_layers=1", "model.encoder_embed_dim=32", "model.decoder_embed_dim=32",
        "model.encoder_ffn_embed_dim=64", "model.decoder_ffn_embed_dim=64", "dataset.max_tokens=1000",
        "optimization.max_update=3", "dataset.num_workers=0", f"hydra.run.dir={tmp_path / 'hydra'}"])
    cmd[0] = os.path.join(os.path.dirname(sys.executable), "fairseq-hydra-train")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "Admin profile (" in log and "done training" in log
    from fairseq_admin.checkpoints import load_checkpoint
    cfg = load_checkpoint(str(save / "checkpoint_last.pt"))["cfg"]
    # the recipe's values reached the run: model, optimizer, schedule
    assert cfg["model"]["dropout"] == 0.3 and cfg["model"]["_name"] == "admin_transformer"
    assert cfg["optimizer"]["_name"] == "radam" and cfg["optimizer"]["weight_decay"] == 0.0001
    assert cfg["lr_scheduler"]["warmup_updates"] == 6000 and list(cfg["optimization"]["lr"]) == [0.0007]
    assert list((save / "tensorboard").rglob("events.out.tfevents.*"))


def test_recipe_errors_are_one_line(tmp_path):
    with pytest.raises(AdminError, match="recipes are fairseq hydra configs now"):
        load_recipe(IWSLT + ".json")
    with pytest.raises(AdminError, match="no recipe"):
        load_recipe(str(tmp_path))
    (tmp_path / "train.yaml").write_text("task: [unclosed\n")
    with pytest.raises(AdminError, match="not valid YAML"):
        load_recipe(str(tmp_path))


def test_offline_download_names_url_and_folder(tmp_path):
    with pytest.raises(AdminError, match=r"cannot download http://127\.0\.0\.1:9/de-en\.tgz .*place it at "
                                         + re.escape(str(tmp_path / "de-en.tgz"))):
        fetch("de-en.tgz", "http://127.0.0.1:9/de-en.tgz", str(tmp_path))
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_checksums_pinned_and_recorded(tmp_path):
    archive = tmp_path / "a.tgz"
    archive.write_bytes(b"abc")
    with pytest.raises(AdminError, match="does not match"):
        fetch("a.tgz", "http://127.0.0.1:9/a.tgz", str(tmp_path), pinned="0" * 64)
    fetch("a.tgz", "http://127.0.0.1:9/a.tgz", str(tmp_path))  # first use: recorded
    assert (tmp_path / "a.tgz.sha256").read_text().startswith(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    archive.write_bytes(b"abd")  # a corrupted archive is caught on the next run
    with pytest.raises(AdminError, match="does not match"):
        fetch("a.tgz", "http://127.0.0.1:9/a.tgz", str(tmp_path))


def _sample(split, lang, n, start=0):
    with open(os.path.join(SAMPLE, f"{split}.{lang}"), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f][start:start + n]


def _tgz(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _xml(lines):
    return "<mteval>\n<doc docid=\"1\">\n" + "".join(f"<seg id=\"{i + 1}\"> {l} </seg>\n"
                                                     for i, l in enumerate(lines)) + "</doc>\n</mteval>\n"


def _iwslt_archive(folder):
    members = {}
    for lang in ("de", "en"):
        train = _sample("train", lang, 460)
        body = [f"<url>http://www.ted.com/talks/{lang}</url>", "<keywords>talks</keywords>",
                "<talkid>1</talkid>", f"<title>{train[0]}</title>"] + train[1:]
        members[f"de-en/train.tags.de-en.{lang}"] = "\n".join(body) + "\n"
        tests = _sample("test", lang, 50)
        for i, name in enumerate(["IWSLT14.TED.dev2010", "IWSLT14.TED.tst2010", "IWSLT14.TED.tst2011",
                                  "IWSLT14.TED.tst2012", "IWSLT14.TEDX.dev2012"]):
            members[f"de-en/{name}.de-en.{lang}.xml"] = _xml(tests[i * 10:(i + 1) * 10])
    os.makedirs(folder, exist_ok=True)
    _tgz(os.path.join(folder, "de-en.tgz"), members)


def _run(*cmd):
    proc = subprocess.run(["bash", *map(str, cmd)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_iwslt14_recipe_end_to_end_offline(tmp_path, monkeypatch):
    data = tmp_path / "iwslt"
    _iwslt_archive(data / "archives")
    # the whole driver: prepare, then profile/train/average/generate/score (Admin only, tiny, CPU)
    monkeypatch.setenv("VARIANTS", "admin-6-6")
    opts = ["--cpu", "--seeds", "1111", "--average-last", "2", "--extra", TINY_EXTRA, "--gen-extra", GEN_EXTRA]
    log = _run("scripts/run_iwslt14.sh", data, *opts)
    assert (data / "bin" / ".done").exists() and (data / "archives" / "de-en.tgz.sha256").exists()
    test_en = (data / "raw" / "test.en").read_text(encoding="utf-8").splitlines()
    assert len(test_en) == 50 and test_en[0] == _sample("test", "en", 1)[0].strip()
    train = (data / "prep" / "tok" / "train.clean.de").read_text(encoding="utf-8").splitlines()
    valid = (data / "prep" / "tok" / "valid.clean.de").read_text(encoding="utf-8").splitlines()
    assert len(valid) == (len(train) + len(valid)) // 23  # lines 23, 46, ...
    assert all(l == l.lower() for l in train) and not any("<url>" in l or "<title>" in l for l in train)
    assert "device: CPU (--cpu)" in log
    variant = data / "runs" / "admin-6-6"
    run = variant / "seed1111"
    assert (variant / "admin_profile.json").exists() and "--admin-profile-only" in log
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))  # fairseq's tensorboard logs, by default
    assert "tokenized BLEU (fairseq-generate --remove-bpe): BLEU4 = " in log
    assert "case-insensitive sacreBLEU (detokenized vs raw reference):" in log and "nrefs:1|case:lc" in log
    assert "tokenized BLEU, one seed: " in log and "(the paper: 35.67 ± 0.15)" in log
    assert "COVERAGE WARNING" not in log  # every test sentence translated (fairseq's last-batch drop avoided)
    # averaging: ω of the average is the mean of the epoch checkpoints' ω
    epochs = sorted(run.glob("checkpoint[0-9]*.pt"))
    assert len(epochs) >= 2
    avg = torch.load(run / "checkpoint_avg.pt", weights_only=False)["model"]
    key = "decoder.layers.0.ffn_omega.omega"
    mean = sum(torch.load(p, weights_only=False)["model"][key].double() for p in epochs) / len(epochs)
    assert torch.allclose(avg[key].double(), mean, atol=1e-6)
    # a rerun resumes: nothing is redone
    last = (run / "checkpoint_last.pt").read_bytes()
    again = _run("scripts/run_recipe.sh", IWSLT, "admin-6-6", data, *opts)
    assert "| profile (once" not in again and "average the last" not in again
    assert "train seed 1111: finished earlier with these settings, skipped" in again
    assert (run / "checkpoint_last.pt").read_bytes() == last
    assert "generate:" not in again
    # SIGKILL inside generate, then inside score: each rerun ends with the same translations and scores
    gen_out, scores = (run / "generate-test.txt").read_bytes(), (variant / "scores.txt").read_bytes()
    cmd = ["bash", "scripts/run_recipe.sh", IWSLT, "admin-6-6", str(data), *opts]
    for step, tmp in (("generate", run / "generate-test.txt.tmp"), ("score", variant / "scores.txt.tmp")):
        os.remove(run / "generate-test.txt") if step == "generate" else os.remove(variant / "scores.txt")
        run_killed_when(cmd, tmp.exists)
        _run(*cmd[1:])
        assert (run / "generate-test.txt").read_bytes() == gen_out and (variant / "scores.txt").read_bytes() == scores
    # other averaging or decoding settings: that step and the ones after it are redone, not reused
    changed = _run("scripts/run_recipe.sh", IWSLT, "admin-6-6", data, "--cpu", "--seeds", "1111", "--average-last",
                   "1", "--extra", TINY_EXTRA, "--gen-extra", GEN_EXTRA + " --beam 2")
    assert "average the last 1 epoch checkpoints" in changed and "generate:" in changed and "--beam 2" in changed
    assert "--beam 2" in (run / "generate-test.txt.settings").read_text()
    # a failing generate stops the script with fairseq's error shown, and no score is printed
    os.remove(run / "generate-test.txt")
    bad = _run_status("scripts/run_recipe.sh", IWSLT, "admin-6-6", data, *opts[:-1], GEN_EXTRA + " --no-such-flag")
    assert bad.returncode != 0 and "--no-such-flag" in bad.stderr and "tokenized BLEU" not in bad.stdout
    assert not (run / "generate-test.txt").exists()
    # the binarized data changed under a trained seed (prepared again, other text): refused in one line
    done = data / "bin" / ".done"
    assert (variant / "admin_profile.json.settings").read_text().startswith(f"data: {done.read_text()}")
    done.write_text(done.read_text() + "other\n")
    moved = _run_status("scripts/run_recipe.sh", IWSLT, "admin-6-6", data, *opts)
    errors = [l for l in moved.stderr.splitlines() if "error:" in l]
    assert moved.returncode == 2 and len(errors) == 1 and "was trained on other binarized data" in errors[0], moved.stderr
    assert "Traceback" not in moved.stderr and "| profile (once" not in moved.stdout
    # a new seed on the new data: the profile is made again for them, not reused
    new = _run("scripts/run_recipe.sh", IWSLT, "admin-6-6", data, "--cpu", "--seeds", "7", "--average-last", "1",
               "--extra", TINY_EXTRA + " --max-epoch 1", "--gen-extra", GEN_EXTRA)
    assert "| profile (once" in new and "--admin-profile-only: profile written" in new
    assert "other" in (variant / "admin_profile.json.settings").read_text()


def _run_status(*cmd, env=None):
    return subprocess.run(["bash", *map(str, cmd)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, **(env or {})))


def test_run_recipe_never_falls_back_to_the_cpu_silently(tmp_path):
    # no CUDA on this machine: asking for a GPU is an error, not a CPU run
    asked = _run_status("scripts/run_recipe.sh", IWSLT, "admin-6-6", tmp_path, "--gpus", "1")
    assert asked.returncode == 2 and "--gpus 1 asked, but torch" in asked.stderr and "pass --cpu" in asked.stderr
    # a GPU the machine has (a stand-in nvidia-smi) but torch cannot use: an error too
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'\n")
    (fake / "nvidia-smi").chmod(0o755)
    hidden = _run_status("scripts/run_recipe.sh", IWSLT, "admin-6-6", tmp_path,
                         env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert hidden.returncode == 2 and "1 NVIDIA GPU(s) but torch" in hidden.stderr
    assert len(hidden.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_run_recipe_bad_arguments_and_unprepared_data_are_one_line(tmp_path):
    for args, message in ((["--gpus", "abc"], "--gpus abc: give a whole number"),
                          (["--cpu", "--average-last", "0"], "--average-last 0: give a whole number"),
                          (["--cpu", "--seeds", "1 x"], '--seeds "1 x": give whole numbers'),
                          (["--cpu"], f"no binarized data in {tmp_path}/bin: prepare it first")):
        proc = _run_status("scripts/run_recipe.sh", IWSLT, "admin-6-6", tmp_path, *args)
        errors = [l for l in proc.stderr.splitlines() if "error:" in l]
        assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_wmt14_prepare_offline(tmp_path):
    data = tmp_path / "wmt"
    arch = data / "archives"
    os.makedirs(arch)
    en, de = _sample("train", "en", 300), _sample("train", "de", 300)
    _tgz(arch / "training-parallel-europarl-v7.tgz", {"training/europarl-v7.de-en.en": "\n".join(en[:100]) + "\n",
                                                      "training/europarl-v7.de-en.de": "\n".join(de[:100]) + "\n"})
    _tgz(arch / "training-parallel-commoncrawl.tgz", {"commoncrawl.de-en.en": "\n".join(en[100:200]) + "\n",
                                                      "commoncrawl.de-en.de": "\n".join(de[100:200]) + "\n"})
    _tgz(arch / "training-parallel-nc-v12.tgz", {"training/news-commentary-v12.de-en.en": "\n".join(en[200:]) + "\n",
                                                "training/news-commentary-v12.de-en.de": "\n".join(de[200:]) + "\n"})
    _tgz(arch / "dev.tgz", {f"dev/newstest2013.{l}": "\n".join(_sample("valid", l, 30)) + "\n" for l in ("en", "de")})
    _tgz(arch / "test-full.tgz", {"test-full/newstest2014-deen-src.en.sgm": _xml(_sample("test", "en", 40)),
                                  "test-full/newstest2014-deen-ref.de.sgm": _xml(_sample("test", "de", 40))})
    _run("scripts/prepare_wmt14.sh", data)
    assert len((data / "raw" / "train.en").read_text(encoding="utf-8").splitlines()) == 300
    assert len((data / "prep" / "bpe" / "test.de").read_text(encoding="utf-8").splitlines()) == 40
    tok = (data / "prep" / "tok" / "train.tok.de").read_text(encoding="utf-8")
    assert "@-@" in tok and any(c.isupper() for c in tok)  # -a hyphen splitting, true case kept
    assert (data / "bin" / "train.en-de.en.bin").exists()


def test_every_section_of_the_config_reaches_the_command_line(tmp_path):
    # what a user adds to train.yaml, in any section fairseq knows, is in the fairseq-train line too
    import shutil
    recipe_dir = tmp_path / "r"
    shutil.copytree(IWSLT, recipe_dir)
    with open(recipe_dir / "train.yaml", "a") as f:
        f.write("distributed_training:\n  ddp_backend: legacy_ddp\nbpe:\n  _name: subword_nmt\n")
    cmd = train_command(load_recipe(str(recipe_dir)), "admin-6-6", "D", "S")
    flags = _flags(cmd)
    assert flags["--ddp-backend"] == "legacy_ddp" and flags["--bpe"] == "subword_nmt"
