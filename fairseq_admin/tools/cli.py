"""The ``fairseq-admin`` command: inspect and convert Admin profiles, locate the plugin."""
import argparse
import logging
import os
import sys

from ..errors import AdminError
from ..profile_file import format_table, read_profile, write_profile

logger = logging.getLogger("fairseq_admin.tools.cli")


def cmd_user_dir(args) -> None:
    from .. import USER_DIR
    print(USER_DIR)


def cmd_recipe(args) -> None:
    from .recipe import describe
    print(describe(args))


def cmd_score(args) -> None:
    from .score import report
    for line in report(args.generate_out, args.raw_ref, args.target_lang, args.compound_split, args.lowercase,
                       args.paper):
        print(line)


def cmd_show(args) -> None:
    layers = (args.encoder_layers, args.decoder_layers) if args.encoder_layers is not None else None
    profile = read_profile(args.profile, layers=layers)
    print(f"# {args.profile}: source {profile.source}, seed {profile.seed}, tokens {profile.tokens}, "
          f"padding {profile.padding}")
    print(format_table(profile))
    if args.plot:
        from .plots import plot_profile
        plot_profile(profile, args.plot, title=os.path.basename(args.profile))
        logger.info(f"wrote {args.plot}")


def cmd_output_change(args) -> None:
    from .diagnostics import METHODS, depth_sweep, format_sweep, plot_sweep

    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise AdminError(f"unknown method(s) {', '.join(unknown)}: choose from {', '.join(METHODS)}")
    try:
        depths = [int(d) for d in args.depths.split(",")]
    except ValueError:
        raise AdminError(f"--depths {args.depths!r}: give layer counts such as 1,2,4,8")
    if any(d < 1 for d in depths):
        raise AdminError(f"--depths {args.depths!r}: every layer count must be at least 1")
    from types import SimpleNamespace

    from ..task import check_data_folder
    check_data_folder(SimpleNamespace(data=args.data, source_lang=None, target_lang=None))
    table = depth_sweep(args.data, methods, depths, args.embed_dim, args.ffn_dim, args.heads, args.rel,
                        args.draws, args.sentences, args.seed)
    print(format_sweep(table))
    if args.plot:
        plot_sweep(table, args.plot, title=f"output change at init (width {args.embed_dim}, rel {args.rel})")
        logger.info(f"wrote {args.plot}")


TRUST_HELP = ("load with full pickle (can run code): only for a file you trust that holds types beyond "
              "those of fairseq checkpoints")


def cmd_fold(args) -> None:
    from .fold import fold_checkpoint
    fold_checkpoint(args.checkpoint, args.output, args.atol, args.trust_checkpoint)


def cmd_import_profile(args) -> None:
    layers = (args.encoder_layers, args.decoder_layers) if args.encoder_layers is not None else None
    profile = read_profile(args.legacy, layers=layers)
    if not profile.source.startswith("legacy:"):
        raise AdminError(f"{args.legacy} is already a fairseq-admin JSON profile")
    profile.encoder.embed_dim = args.encoder_embed_dim
    profile.decoder.embed_dim = args.decoder_embed_dim or args.encoder_embed_dim
    write_profile(profile, args.out)
    logger.info(f"imported {args.legacy} ({profile.encoder.layers} encoder, {profile.decoder.layers} "
                f"decoder layers) into {args.out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fairseq-admin", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("user-dir", help="print the folder to pass to fairseq's --user-dir")
    s.set_defaults(func=cmd_user_dir)

    def layer_args(s):
        s.add_argument("--encoder-layers", type=int, help="needed for a bare-values legacy file")
        s.add_argument("--decoder-layers", type=int, help="needed for a bare-values legacy file")

    s = sub.add_parser("show", help="print a profile's per-sublayer table (ω, variances, β²)")
    s.add_argument("profile")
    s.add_argument("--plot", metavar="PNG", help="also plot ω and β² per sublayer")
    layer_args(s)
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("import-profile", help="convert a legacy profile.ratio.init to the JSON format")
    s.add_argument("legacy")
    s.add_argument("out")
    layer_args(s)
    s.add_argument("--encoder-embed-dim", type=int, help="record the model width (checked on use)")
    s.add_argument("--decoder-embed-dim", type=int)
    s.set_defaults(func=cmd_import_profile)
    from . import datasets, prepare, recipe, score
    s = sub.add_parser("download", help="fetch (or find) and unpack IWSLT14 / WMT14 into raw text")
    datasets.add_arguments(s)
    s.set_defaults(func=datasets.run)

    s = sub.add_parser("prepare", help="tokenize, clean and BPE a raw {train,valid,test}.{src,tgt} corpus")
    prepare.add_arguments(s)
    s.set_defaults(func=prepare.run)

    s = sub.add_parser("recipe", help="print the fairseq command of a recipe step (configs/RECIPE/)")
    recipe.add_arguments(s)
    s.set_defaults(func=cmd_recipe)

    s = sub.add_parser("average", help="average the last N epoch (or interval) checkpoints (ω included)")
    s.add_argument("checkpoint_dir")
    s.add_argument("--last", type=int, default=10, help="how many epoch checkpoints (default 10)")
    s.add_argument("--updates", action="store_true",
                   help="average interval checkpoints (checkpoint_E_U.pt of --save-interval-updates) by update "
                        "instead of epoch checkpoints")
    s.add_argument("--upper-update", type=int, help="with --updates: only checkpoints up to this update")
    s.add_argument("--upper-epoch", type=int, help="only epochs up to this one (the reference: IWSLT14 90, "
                                                   "WMT14 100, i.e. epochs 81-90 / 91-100)")
    s.add_argument("--allow-fewer", action="store_true", help="average fewer than --last if that is all there is")
    s.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    s.add_argument("--output", required=True)
    s.set_defaults(func=cmd_average)

    s = sub.add_parser("output-change", help="Var[F(x,W)-F(x,W+δ)] at init over depths and methods "
                                             "(the paper's O(N) vs O(log N) figure)")
    s.add_argument("data", help="binarized data (a batch of its valid split is x)")
    s.add_argument("--methods", default="postln,preln,admin,admin-logn,deepnorm")
    s.add_argument("--depths", default="1,2,4,8,12", help="layers per stack")
    s.add_argument("--embed-dim", type=int, default=64)
    s.add_argument("--ffn-dim", type=int, default=128)
    s.add_argument("--heads", type=int, default=4)
    s.add_argument("--rel", type=float, default=0.01, help="perturbation size relative to each weight's std")
    s.add_argument("--draws", type=int, default=3)
    s.add_argument("--sentences", type=int, default=32)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--plot", metavar="PNG")
    s.set_defaults(func=cmd_output_change)

    s = sub.add_parser("fold", help="fold trained ω into the weights: a plain fairseq transformer checkpoint")
    s.add_argument("checkpoint")
    s.add_argument("output")
    s.add_argument("--atol", type=float, default=0.0,
                   help="accept first-sublayer ω within this distance of 1 (not exact then)")
    s.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    s.set_defaults(func=cmd_fold)

    s = sub.add_parser("score", help="labelled BLEU scores of a fairseq-generate output")
    score.add_arguments(s)
    s.set_defaults(func=cmd_score)
    return p


def cmd_average(args) -> None:
    from .average import average_checkpoints, last_epoch_checkpoints, last_update_checkpoints

    if args.updates:
        if args.upper_epoch is not None:
            raise AdminError("--upper-epoch is for epoch checkpoints: with --updates use --upper-update")
        paths = last_update_checkpoints(args.checkpoint_dir, args.last, args.upper_update, args.allow_fewer)
    else:
        if args.upper_update is not None:
            raise AdminError("--upper-update needs --updates (interval checkpoints)")
        paths = last_epoch_checkpoints(args.checkpoint_dir, args.last, args.upper_epoch, args.allow_fewer)
    average_checkpoints(paths, args.output, args.trust_checkpoint)
    logger.info(f"averaged {len(paths)} checkpoints ({', '.join(os.path.basename(p) for p in paths)}) "
                f"into {args.output}")


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", level=logging.INFO, stream=sys.stderr, force=True)
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except AdminError as e:
        print(f"fairseq-admin: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
