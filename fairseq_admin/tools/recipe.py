"""Recipes: a recipe is a folder of configs/ holding fairseq's own hydra config of its training
(``train.yaml`` plus one ``variant/*.yaml`` per variant: the one source of every training
hyperparameter, runnable as is with ``fairseq-hydra-train``) and ``recipe.yaml`` (data preparation,
seeds, averaging, decoding, scoring, the paper's BLEU). This module composes them as hydra does and
turns them into the fairseq command lines that scripts/run_recipe.sh runs.

The config's batch is written for one GPU (max_tokens × update_freq tokens per update); on N GPUs
update_freq and tokens per GPU are derived so that the tokens per update stay the same.
"""
import math
import os
import shlex
from typing import Dict, List, Optional, Tuple

from .. import USER_DIR
from ..errors import AdminError

#: the sections of a fairseq config in the order their flags are written (any other follows)
SECTIONS = ("task", "model", "criterion", "optimizer", "lr_scheduler", "optimization", "dataset", "checkpoint",
            "common")
#: ``_name`` of a section is the choice of a fairseq component: --SECTION, but for the model (--arch)
COMPONENT_FLAGS = {"model": "--arch"}
#: the loss-scaling settings that only mean something with fp16 (a GPU)
FP16_KEYS = ("fp16", "fp16_scale_window", "threshold_loss_scale")


def _yaml(path: str):
    from omegaconf import OmegaConf
    try:
        return OmegaConf.load(path)
    except FileNotFoundError:
        raise AdminError(f"recipe file {path} is missing: a recipe folder holds train.yaml, recipe.yaml and variant/")
    except Exception as e:  # a YAML syntax error names the line
        raise AdminError(f"recipe file {path} is not valid YAML: {' '.join(str(e).split())}")


def load_recipe(path: str) -> Dict:
    """The recipe in folder ``path`` (or named by one of its files): recipe.yaml's values, plus
    ``config`` (train.yaml without its defaults list), ``variants`` (name -> its YAML), ``dir``,
    ``source_lang`` and ``target_lang`` (from train.yaml)."""
    if path.endswith(".json"):
        raise AdminError(f"{path}: recipes are fairseq hydra configs now, one folder each: pass "
                         f"{os.path.splitext(path)[0]} (train.yaml, recipe.yaml, variant/)")
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    if not os.path.isfile(os.path.join(folder, "train.yaml")):
        raise AdminError(f"no recipe {path}: pass a recipe folder of configs/ (e.g. configs/iwslt14_de_en), "
                         "which holds train.yaml, recipe.yaml and variant/")
    from omegaconf import OmegaConf
    config = _yaml(os.path.join(folder, "train.yaml"))
    config.pop("defaults", None)  # hydra's: the variant group, chosen here per command
    config.pop("hydra", None)  # hydra's own settings (the run folder), not the job's
    recipe = OmegaConf.to_container(_yaml(os.path.join(folder, "recipe.yaml")))
    vdir = os.path.join(folder, "variant")
    names = sorted(f[:-5] for f in os.listdir(vdir) if f.endswith(".yaml")) if os.path.isdir(vdir) else []
    if not names:
        raise AdminError(f"recipe {folder} has no variant/*.yaml")
    recipe.update(dir=folder, config=config,
                  variants={n: _yaml(os.path.join(vdir, f"{n}.yaml")) for n in names})
    for key in ("name", "seeds", "generate"):
        if key not in recipe:
            raise AdminError(f"recipe {folder}/recipe.yaml lacks '{key}'")
    try:
        recipe["source_lang"], recipe["target_lang"] = config.task.source_lang, config.task.target_lang
    except Exception:
        raise AdminError(f"recipe {folder}/train.yaml lacks task.source_lang and task.target_lang")
    return recipe


def variant_of(recipe: Dict, variant: str):
    if variant not in recipe["variants"]:
        raise AdminError(f"recipe {recipe['name']} has no variant {variant!r}; it has: "
                         f"{', '.join(recipe['variants'])}")
    return recipe["variants"][variant]


def is_admin(recipe: Dict, variant: str) -> bool:
    return variant_of(recipe, variant).task.get("_name") == "translation_admin"


def compose(recipe: Dict, variant: str, data: str = "DATA", save_dir: str = "SAVE_DIR", user_dir: str = "",
            seed: Optional[int] = None):
    """The training config of a variant, as ``fairseq-hydra-train ... variant=VARIANT`` composes it
    (train.yaml first, then the variant's file), with the run's paths and seed filled in."""
    from omegaconf import OmegaConf
    run = {"task": {"data": data}, "checkpoint": {"save_dir": save_dir},
           "common": {"user_dir": user_dir or USER_DIR}}
    if seed:
        run["common"]["seed"] = seed
    cfg = OmegaConf.merge(recipe["config"], variant_of(recipe, variant), run)
    return OmegaConf.to_container(cfg, resolve=True)


def batch_split(update_freq: int, tokens_per_gpu: int, gpus: int) -> Tuple[int, int]:
    """(max_tokens per GPU, update_freq) that keep the config's tokens per update (written for one GPU:
    ``update_freq`` × ``tokens_per_gpu``) on ``gpus`` GPUs."""
    if gpus < 1:
        raise AdminError(f"need at least one GPU (or --cpu), got {gpus}")
    total = update_freq * tokens_per_gpu
    update_freq = math.ceil(total / (gpus * tokens_per_gpu))
    return total // (gpus * update_freq), update_freq


def _compose_for(recipe: Dict, variant: str, data: str, save_dir: str, user_dir: str, seed: Optional[int],
                 gpus: int):
    """The composed config of a run on ``gpus`` GPUs and its (max_tokens per GPU, update_freq)."""
    cfg = compose(recipe, variant, data, save_dir, user_dir, seed)
    return (cfg, *batch_split(cfg["optimization"]["update_freq"][0], cfg["dataset"]["max_tokens"], gpus))


def _flag_value(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def train_command(recipe: Dict, variant: str, data: str, save_dir: str, gpus: int = 1, cpu: bool = False,
                  user_dir: str = "", extra: List[str] = (), seed: Optional[int] = None) -> List[str]:
    """The fairseq-train command line of one variant (``gpus`` processes, or the CPU): every value of
    the composed config as its command-line flag."""
    cfg, tokens, update_freq = _compose_for(recipe, variant, data, save_dir, user_dir, seed, 1 if cpu else gpus)
    cfg["dataset"]["max_tokens"], cfg["optimization"]["update_freq"] = tokens, [update_freq]
    cmd = ["fairseq-train", data, "--user-dir", cfg["common"].pop("user_dir")]
    for section in [*SECTIONS, *(k for k in cfg if k not in SECTIONS)]:
        items = sorted(cfg.get(section, {}).items(), key=lambda kv: kv[0] != "_name")  # the component first
        for key, value in items:
            if (section, key) == ("task", "data") or (cpu and section == "common" and key in FP16_KEYS):
                continue
            component = COMPONENT_FLAGS.get(section, "--" + section.replace("_", "-"))
            flag = component if key == "_name" else "--" + key.replace("_", "-")
            if isinstance(value, bool):
                cmd += [flag] if value else []
            elif value is not None:
                cmd += [flag, _flag_value(value)]
    cmd += ["--cpu"] if cpu else ["--distributed-world-size", str(gpus)]
    return cmd + list(extra)


def hydra_command(recipe: Dict, variant: str, data: str, save_dir: str, gpus: int = 1, cpu: bool = False,
                  user_dir: str = "", extra: List[str] = (), seed: Optional[int] = None) -> List[str]:
    """The same run as ``train_command``, as a fairseq-hydra-train command line on the recipe's config."""
    cfg, tokens, update_freq = _compose_for(recipe, variant, data, save_dir, user_dir, seed, 1 if cpu else gpus)
    cmd = ["fairseq-hydra-train", "--config-dir", os.path.abspath(recipe["dir"]), "--config-name", "train",
           f"variant={variant}", f"common.user_dir={cfg['common']['user_dir']}", f"task.data={data}",
           f"checkpoint.save_dir={save_dir}", f"common.seed={cfg['common']['seed']}",
           f"dataset.max_tokens={tokens}", f"optimization.update_freq=[{update_freq}]"]
    cmd += ["common.cpu=true", "common.fp16=false"] if cpu else [f"distributed_training.distributed_world_size={gpus}"]
    return cmd + list(extra)


def generate_command(recipe: Dict, data: str, checkpoint: str, cpu: bool = False, user_dir: str = "",
                     extra: List[str] = ()) -> List[str]:
    """fairseq-generate with the recipe's beam and length penalty, BPE removed (tokenized BLEU)."""
    g = recipe["generate"]
    cmd = ["fairseq-generate", data, "--user-dir", user_dir or USER_DIR,
           "--source-lang", recipe["source_lang"], "--target-lang", recipe["target_lang"],
           "--path", checkpoint, "--gen-subset", g.get("subset", "test"), "--beam", str(g["beam"]),
           "--lenpen", str(g["lenpen"]), "--batch-size", str(g["batch_size"]), "--remove-bpe",
           # fairseq 0.12 drops the last batch when its size is not a multiple of this (default 8): up to 7
           # test sentences, the longest, would be left out of the BLEU (fairseq issue 5036)
           "--required-batch-size-multiple", "1"]
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
    p.add_argument("config", help="a recipe folder, e.g. configs/iwslt14_de_en")
    p.add_argument("variant", nargs="?", help="e.g. admin-6-6 (omit with --list)")
    p.add_argument("--list", action="store_true", help="list the variants with the paper's BLEU")
    p.add_argument("--step", choices=["prepare", "profile", "train", "hydra", "hydra-profile", "generate", "get", "env"],
                   default="train",
                   help="which command to print; hydra, hydra-profile: the train or profile step as a "
                        "fairseq-hydra-train command on the recipe's config; get: one recipe value (--key "
                        "prepare.corpus); env: every command and setting of the variant as shell assignments")
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
    p.add_argument("--extra", default="", help="more fairseq-train (or -generate) arguments, or hydra overrides "
                                              "with --step hydra, one shell-quoted string")


def describe(args) -> str:
    """What ``fairseq-admin recipe`` prints for ``args``: a command line, a value, the variants, or the
    shell assignments of ``--step env``."""
    recipe = load_recipe(args.config)
    if args.step == "get":
        value = {k: v for k, v in recipe.items() if k not in ("config", "variants")}
        for part in (args.key or "").split("."):
            if not isinstance(value, dict) or part not in value:
                raise AdminError(f"recipe {args.config} has no {args.key!r}")
            value = value[part]
        return str(value).lower() if isinstance(value, bool) else str(value)
    if args.step == "prepare":
        return shlex.join(prepare_command(recipe, args.raw, args.out))
    if args.step == "generate":
        return shlex.join(generate_command(recipe, args.data, args.checkpoint or "CHECKPOINT", args.cpu,
                                           extra=shlex.split(args.extra)))
    if args.step == "env":
        return shell_env(recipe, args)
    if args.list or not args.variant:
        return "\n".join(f"{name:14} paper BLEU: {recipe.get('paper_bleu', {}).get(name, '-')}"
                         for name in recipe["variants"])
    return shlex.join(step_command(recipe, args, args.step))


def step_command(recipe: Dict, args, step: str) -> List[str]:
    """The fairseq-train (or, for hydra*, fairseq-hydra-train) command of the profile or train step of
    ``args.variant``."""
    hydra = step.startswith("hydra")
    step = {"hydra": "train", "hydra-profile": "profile"}.get(step, step)
    profile = getattr(args, "profile", None) or os.path.join(args.save_dir, "admin_profile.json")
    admin = is_admin(recipe, args.variant)
    seed = getattr(args, "seed", None)
    options = []
    if step == "profile":
        if not admin:
            raise AdminError(f"{args.variant} is not an Admin variant: nothing to profile")
        options = [("admin_profile_only", "true"), ("admin_profile", profile)]
        seed = seeds_of(recipe)[0]  # one profile, made with the first seed, shared by every seed
    elif admin:
        options = [("admin_profile", profile)]
    if hydra:
        extra = [f"task.{k}={v}" for k, v in options]
    else:
        extra = [x for k, v in options for x in (["--admin-profile-only"] if k == "admin_profile_only" else
                                                  ["--admin-profile", v])]
    extra += shlex.split(args.extra)
    # the paper profiles in a single process on one GPU's batch: the profile step runs alone
    gpus = 1 if step == "profile" else args.gpus
    build = hydra_command if hydra else train_command
    return build(recipe, args.variant, args.data, args.save_dir, gpus, args.cpu, extra=extra, seed=seed)


def seeds_of(recipe: Dict) -> List[int]:
    return [int(s) for s in recipe["seeds"]]


def shell_env(recipe: Dict, args) -> str:
    """Shell assignments with everything scripts/run_recipe.sh needs (one start of Python)."""
    admin = is_admin(recipe, args.variant)
    avg = recipe.get("average", {})
    env = {
        "admin": "true" if admin else "false",
        "profile_cmd": shlex.join(step_command(recipe, args, "profile")) if admin else "",
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
