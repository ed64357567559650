"""Recipes: turn a configs/*.json recipe (hyperparameters in one place) into fairseq command lines.

The effective batch of the reference (reference_gpus x max_tokens_per_gpu tokens per update) is
kept whatever the number of GPUs: update_freq and tokens per GPU are derived from it.
"""
import json
import math
import os
import shlex
from typing import Dict, List, Optional, Tuple

from .errors import AdminError


def load_recipe(path: str) -> Dict:
    try:
        with open(path, encoding="utf-8") as f:
            recipe = json.load(f)
    except FileNotFoundError:
        raise AdminError(f"no recipe {path}: see configs/ for the recipes")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AdminError(f"recipe {path} is not valid JSON: {e}")
    for key in ("name", "source_lang", "target_lang", "train", "variants", "generate"):
        if key not in recipe:
            raise AdminError(f"recipe {path} lacks '{key}'")
    return recipe


def variant_of(recipe: Dict, variant: str) -> Dict:
    if variant not in recipe["variants"]:
        raise AdminError(f"recipe {recipe['name']} has no variant {variant!r}; it has: "
                         f"{', '.join(recipe['variants'])}")
    return recipe["variants"][variant]


def batch_split(reference_gpus: int, tokens_per_gpu: int, gpus: int) -> Tuple[int, int]:
    """(max_tokens per GPU, update_freq) that keep the reference's tokens per update on ``gpus``."""
    if gpus < 1:
        raise AdminError(f"need at least one GPU (or --cpu), got {gpus}")
    total = reference_gpus * tokens_per_gpu
    update_freq = math.ceil(total / (gpus * tokens_per_gpu))
    return total // (gpus * update_freq), update_freq


def train_command(recipe: Dict, variant: str, data: str, save_dir: str, gpus: int = 1, cpu: bool = False,
                  user_dir: str = "", extra: List[str] = (), seed: Optional[int] = None) -> List[str]:
    """The fairseq-train command line of one variant (``gpus`` processes, or the CPU)."""
    v, t = variant_of(recipe, variant), recipe["train"]
    tokens, update_freq = batch_split(t["reference_gpus"], t["max_tokens_per_gpu"], 1 if cpu else gpus)
    cmd = ["fairseq-train", data, "--user-dir", user_dir or os.path.dirname(os.path.abspath(__file__)),
           "--task", "translation_admin" if v.get("admin") else "translation", "--arch", v["arch"],
           "--source-lang", recipe["source_lang"], "--target-lang", recipe["target_lang"]]
    if "layers" in v:
        cmd += ["--encoder-layers", str(v["layers"][0]), "--decoder-layers", str(v["layers"][1])]
    if v.get("pre_ln"):
        cmd += ["--encoder-normalize-before", "--decoder-normalize-before"]
    if t.get("share_all_embeddings"):
        cmd += ["--share-all-embeddings"]
    cmd += ["--optimizer", t["optimizer"], "--adam-betas", t["adam_betas"], "--clip-norm", str(t["clip_norm"]),
            "--lr", str(t["lr"]), "--lr-scheduler", t["lr_scheduler"], "--warmup-updates", str(t["warmup_updates"]),
            "--warmup-init-lr", str(t["warmup_init_lr"]), "--criterion", t["criterion"],
            "--label-smoothing", str(t["label_smoothing"]), "--dropout", str(t["dropout"]),
            "--attention-dropout", str(t["attention_dropout"]), "--activation-dropout", str(t["activation_dropout"]),
            "--weight-decay", str(t["weight_decay"]), "--max-tokens", str(tokens), "--update-freq", str(update_freq),
            "--max-update", str(t["max_update"]), "--seed", str(seed or t["seed"]), "--save-dir", save_dir,
            "--log-format", "simple", "--log-interval", "100",
            "--tensorboard-logdir", os.path.join(save_dir, "tensorboard")]
    if "stop_min_lr" in t:  # fairseq 0.8's --min-lr: stop when the lr falls below it
        cmd += ["--stop-min-lr", str(t["stop_min_lr"])]
    if t.get("keep_last_epochs"):  # keeps the disk bounded; the averaged epochs must be among them
        cmd += ["--keep-last-epochs", str(t["keep_last_epochs"])]
    if cpu:
        cmd += ["--cpu"]
    else:
        cmd += ["--distributed-world-size", str(gpus)]
        if t.get("fp16"):  # with the reference's loss-scale settings
            cmd += ["--fp16", "--fp16-scale-window", str(t["fp16_scale_window"]),
                    "--threshold-loss-scale", str(t["threshold_loss_scale"])]
    return cmd + list(extra)


def generate_command(recipe: Dict, data: str, checkpoint: str, cpu: bool = False, user_dir: str = "",
                     extra: List[str] = ()) -> List[str]:
    """fairseq-generate with the recipe's beam and length penalty, BPE removed (tokenized BLEU)."""
    g = recipe["generate"]
    cmd = ["fairseq-generate", data, "--user-dir", user_dir or os.path.dirname(os.path.abspath(__file__)),
           "--source-lang", recipe["source_lang"], "--target-lang", recipe["target_lang"],
           "--path", checkpoint, "--gen-subset", g.get("subset", "test"), "--beam", str(g["beam"]),
           "--lenpen", str(g["lenpen"]), "--batch-size", str(g["batch_size"]), "--remove-bpe"]
    return cmd + (["--cpu"] if cpu else ["--fp16"]) + list(extra)


def prepare_command(recipe: Dict, raw: str, out: str) -> List[str]:
    """fairseq-admin prepare with every tokenization, cleaning and BPE setting of the recipe spelled out."""
    p = recipe["prepare"]
    cmd = ["fairseq-admin", "prepare", raw, out, "-s", recipe["source_lang"], "-t", recipe["target_lang"],
           "--style", p.get("style", "wmt14"), "--bpe-merges", str(p["bpe_merges"]), "--max-len", str(p["max_len"]),
           "--max-ratio", str(p["max_ratio"]), "--valid-every", str(p.get("valid_every", 0))]
    cmd += ["--lowercase"] if p.get("lowercase") else []
    cmd += [] if p.get("normalize", True) else ["--no-normalize"]
    cmd += [] if p.get("aggressive_hyphen_split", True) else ["--no-aggressive-hyphen-split"]
    cmd += [] if p.get("escape", True) else ["--no-escape"]
    return cmd


def add_arguments(p) -> None:
    p.add_argument("config", help="a recipe, e.g. configs/iwslt14_de_en.json")
    p.add_argument("variant", nargs="?", help="e.g. admin-6-6 (omit with --list)")
    p.add_argument("--list", action="store_true", help="list the variants with the paper's BLEU")
    p.add_argument("--step", choices=["prepare", "profile", "train", "generate", "get", "env"], default="train",
                   help="which command to print; get: one recipe value (--key prepare.corpus); env: every "
                        "command and setting of the variant as shell assignments, for the scripts")
    p.add_argument("--key", help="for --step get: a dotted key such as prepare.corpus")
    p.add_argument("--raw", default="RAW", help="for --step prepare")
    p.add_argument("--out", default="OUT", help="for --step prepare")
    p.add_argument("--data", default="DATA")
    p.add_argument("--save-dir", default="SAVE_DIR")
    p.add_argument("--checkpoint", help="for --step generate")
    p.add_argument("--seed", type=int, help="train with this seed (default: the recipe's first)")
    p.add_argument("--profile", help="the Admin profile file (default SAVE_DIR/admin_profile.json); the "
                                     "profile step always uses the recipe's first seed, as the reference")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--extra", default="", help="more fairseq-train (or -generate) arguments, one shell-quoted string")


def run(args) -> None:
    recipe = load_recipe(args.config)
    if args.step == "get":
        value = recipe
        for part in (args.key or "").split("."):
            if not isinstance(value, dict) or part not in value:
                raise AdminError(f"recipe {args.config} has no {args.key!r}")
            value = value[part]
        print(str(value).lower() if isinstance(value, bool) else value)
        return
    if args.step == "prepare":
        print(shlex.join(prepare_command(recipe, args.raw, args.out)))
        return
    if args.step == "generate":
        print(shlex.join(generate_command(recipe, args.data, args.checkpoint or "CHECKPOINT", args.cpu,
                                          extra=shlex.split(args.extra))))
        return
    if args.step == "env":
        print(shell_env(recipe, args))
        return
    if args.list or not args.variant:
        for name in recipe["variants"]:
            print(f"{name:14} paper BLEU: {recipe.get('paper_bleu', {}).get(name, '-')}")
        return
    print(shlex.join(step_command(recipe, args, args.step)))


def step_command(recipe: Dict, args, step: str) -> List[str]:
    """The fairseq-train command of the profile or train step of ``args.variant``."""
    extra = shlex.split(args.extra)
    profile = getattr(args, "profile", None) or os.path.join(args.save_dir, "admin_profile.json")
    admin = variant_of(recipe, args.variant).get("admin")
    seed = getattr(args, "seed", None)
    if step == "profile":
        if not admin:
            raise AdminError(f"{args.variant} is not an Admin variant: nothing to profile")
        extra += ["--admin-profile-only", "--admin-profile", profile]
        seed = seeds_of(recipe)[0]  # one profile, made with the first seed, shared by every seed
    elif admin:
        extra += ["--admin-profile", profile]
    # the paper profiles in a single process on one GPU's batch: the profile step runs alone
    gpus = 1 if step == "profile" else args.gpus
    return train_command(recipe, args.variant, args.data, args.save_dir, gpus, args.cpu, extra=extra, seed=seed)


def seeds_of(recipe: Dict) -> List[int]:
    t = recipe["train"]
    return list(t.get("seeds") or [t["seed"]])


def shell_env(recipe: Dict, args) -> str:
    """Shell assignments with everything scripts/run_recipe.sh needs (one start of Python)."""
    v = variant_of(recipe, args.variant)
    avg = recipe.get("average", {})
    env = {
        "admin": "true" if v.get("admin") else "false",
        "profile_cmd": shlex.join(step_command(recipe, args, "profile")) if v.get("admin") else "",
        "train_cmd": shlex.join(step_command(recipe, args, "train")),
        "seeds": " ".join(map(str, seeds_of(recipe))),
        "average_last": str(avg.get("last_epochs", 10)),
        "average_upper": str(avg.get("upper_epoch", "")),
        "target_lang": recipe["target_lang"],
        "lowercase": "true" if recipe.get("prepare", {}).get("lowercase") else "false",
        "compound_split": "true" if recipe.get("score", {}).get("compound_split") else "false",
        "paper_bleu": recipe.get("paper_bleu", {}).get(args.variant, "-"),
    }
    return "\n".join(f"{k}={shlex.quote(val)}" for k, val in env.items())
