"""The Admin profile: a versioned JSON file (read, atomic write, validation, legacy import).

The reference code (arXiv:2004.08249) wrote ``profile.ratio.init``: one ``index value`` line per
sublayer, encoder lines first; its sibling wrote bare values. Both import here.
"""
import datetime
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

from .errors import AdminError
from .files import atomic_write_text
from .omega import branch_dependency, sublayer_names

FORMAT = "fairseq-admin-profile"
VERSION = 1
_RECREATE = "re-create it with fairseq-train ... --admin-profile-only"


@dataclass
class SublayerStat:
    layer: int
    kind: str
    omega: float
    var_input: Optional[float] = None  # Var(r_i), the sublayer input (= shortcut)
    var_shortcut: Optional[float] = None  # Var(ω_i ⊙ r_i)
    var_branch: Optional[float] = None  # Var(F_i(r_i)), after the branch's dropout

    @property
    def beta2(self) -> Optional[float]:
        """β²: the sublayer output's dependency on its own branch."""
        if self.var_shortcut is None or self.var_branch is None:
            return None
        return branch_dependency(self.var_shortcut, self.var_branch)


@dataclass
class StackProfile:
    layers: int
    embed_dim: Optional[int]
    sublayers: List[SublayerStat]


@dataclass
class Profile:
    encoder: StackProfile
    decoder: StackProfile
    seed: Optional[int] = None
    tokens: Optional[int] = None
    sentences: Optional[int] = None
    padding: str = "included"
    arch: Optional[str] = None
    source: str = "profiled"
    versions: dict = field(default_factory=dict)
    created: str = ""

    def stack(self, name: str) -> StackProfile:
        return self.encoder if name == "encoder" else self.decoder

    def to_dict(self) -> dict:
        out = {"format": FORMAT, "version": VERSION}
        out.update(asdict(self))
        return out


#: the packages whose versions decide a result (tokens, BPE, BLEU, training), recorded in result files
RESULT_PACKAGES = ("torch", "numpy", "sacrebleu", "sacremoses", "subword-nmt")


def software_versions() -> dict:
    """{package: version} of what made a result: Python, fairseq, fairseq-admin and RESULT_PACKAGES."""
    import platform
    from importlib import metadata

    import fairseq

    from . import __version__
    out = {"python": platform.python_version(), "fairseq": fairseq.__version__, "fairseq_admin": __version__}
    for name in RESULT_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def versions_line() -> str:
    """One line naming the versions (the last line of score output and study summaries)."""
    return "versions: " + ", ".join(f"{k} {v}" for k, v in software_versions().items())


def write_profile(profile: Profile, path: str) -> None:
    """Write the profile as JSON, atomically (a reader sees the old file or the whole new one)."""
    if os.path.isdir(path):
        raise AdminError(f"cannot write the profile to {path}: it is a folder; give a file name "
                         f"(e.g. {os.path.join(path, 'admin_profile.json')})")
    if not profile.versions:
        profile.versions = software_versions()
    if not profile.created:
        profile.created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    atomic_write_text(path, json.dumps(profile.to_dict(), indent=1) + "\n")


def _stack_from_dict(path: str, name: str, d) -> StackProfile:
    try:
        stats = [SublayerStat(**s) for s in d["sublayers"]]
        stack = StackProfile(int(d["layers"]), d.get("embed_dim"), stats)
    except (KeyError, TypeError, ValueError) as e:
        raise AdminError(f"profile {path}: {name} section is malformed ({e!r}); {_RECREATE}")
    expected = sublayer_names(name, stack.layers)
    if [(s.layer, s.kind) for s in stats] != expected:
        raise AdminError(f"profile {path}: {name} lists {len(stats)} sublayers, expected "
                         f"{len(expected)} for {stack.layers} layers; {_RECREATE}")
    return validate_stack(path, name, stack)


#: no profiled ω comes near this (ω² is a running sum of variances of LayerNorm outputs and branches)
MAX_OMEGA = 1e4
#: profiled ω start at 1 and grow; trained ones drift a little below 1: anything this small is no profile
MIN_OMEGA = 1e-3


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def validate_stack(path: str, name: str, stack: StackProfile) -> StackProfile:
    """The one check every profile source passes (JSON, legacy, imported): ω finite, positive, plausible."""
    if stack.embed_dim is not None and (not _number(stack.embed_dim) or stack.embed_dim != int(stack.embed_dim)
                                        or stack.embed_dim < 1):
        raise AdminError(f"profile {path}: {name} embed_dim is {stack.embed_dim!r}, not a whole number; {_RECREATE}")
    for s in stack.sublayers:
        if not _number(s.omega) or not MIN_OMEGA <= s.omega <= MAX_OMEGA:
            raise AdminError(f"profile {path}: {name} layer {s.layer} {s.kind} has ω = {s.omega!r}, not a "
                             f"number from {MIN_OMEGA:g} to {MAX_OMEGA:g}; {_RECREATE}")
        for field in ("var_input", "var_shortcut", "var_branch"):
            value = getattr(s, field)
            if value is not None and (not _number(value) or value < 0):
                raise AdminError(f"profile {path}: {name} layer {s.layer} {s.kind} has {field} = {value!r}, not a "
                                 f"non-negative number; {_RECREATE}")
    return stack


def read_profile(path: str, layers: Optional[Tuple[int, int]] = None) -> Profile:
    """Read a JSON profile, or a legacy text profile (``layers`` = (encoder, decoder) is needed
    to split a bare-values legacy file)."""
    if os.path.isdir(path):
        raise AdminError(f"profile {path} is a folder: give the profile file (e.g. {os.path.join(path, 'admin_profile.json')})")
    if not os.path.isfile(path):
        raise AdminError(f"profile {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise AdminError(f"profile {path} is not text (not UTF-8): pass a JSON or legacy profile; {_RECREATE}")
    if not text.strip():
        raise AdminError(f"profile {path} is empty; {_RECREATE}")
    if text.lstrip().startswith("{"):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise AdminError(f"profile {path} is not valid JSON (truncated?): {e}; {_RECREATE}")
        except RecursionError:
            raise AdminError(f"profile {path} is JSON nested too deeply to be a profile; {_RECREATE}")
        return profile_from_dict(d, path)
    return import_legacy(path, text, layers)


def profile_from_dict(d, path: str) -> Profile:
    """Validate and build a Profile from its JSON dict (``path`` names it in errors)."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise AdminError(f"{path} is JSON but not a fairseq-admin profile; {_RECREATE}")
    if d.get("version") != VERSION:
        raise AdminError(f"profile {path} has format version {d.get('version')!r}; this "
                         f"fairseq-admin reads version {VERSION}: upgrade it or {_RECREATE}")
    keys = {k: d[k] for k in ("seed", "tokens", "sentences", "padding", "arch", "source",
                              "versions", "created") if k in d}
    return Profile(_stack_from_dict(path, "encoder", d.get("encoder")),
                   _stack_from_dict(path, "decoder", d.get("decoder")), **keys)


def import_legacy(path: str, text: str, layers: Optional[Tuple[int, int]] = None) -> Profile:
    """Parse the reference's ``index value`` lines (encoder 1..2L_e, then decoder 1..3L_d) or
    bare values (one per line, encoder first; needs ``layers``)."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    try:
        if all(len(r) == 2 for r in rows):
            indexed = [(int(r[0]), float(r[1])) for r in rows]
            splits = [i for i in range(1, len(indexed)) if indexed[i][0] <= indexed[i - 1][0]]
            if len(splits) != 1:
                raise ValueError("expected the index to restart exactly once (encoder, then decoder)")
            enc = [v for _, v in indexed[: splits[0]]]
            dec = [v for _, v in indexed[splits[0]:]]
        elif all(len(r) == 1 for r in rows):
            values = [float(r[0]) for r in rows]
            if layers is None:
                raise ValueError("a bare-values legacy profile needs the encoder/decoder layer counts")
            expected = 2 * layers[0] + 3 * (layers[1] if layers[1] is not None else layers[0])
            if len(values) != expected:
                raise ValueError(f"{len(values)} values, but {layers[0]} encoder and "
                                 f"{layers[1] if layers[1] is not None else layers[0]} decoder layers need "
                                 f"2 x {layers[0]} + 3 x {layers[1] if layers[1] is not None else layers[0]} = {expected}")
            enc, dec = values[: 2 * layers[0]], values[2 * layers[0]:]
        else:
            raise ValueError("lines must all be 'index value' or all a bare value")
    except ValueError as e:
        raise AdminError(f"profile {path} is neither JSON nor a legacy Admin profile: {e}")
    if layers is not None and all(n is not None for n in layers) and (len(enc), len(dec)) != (2 * layers[0], 3 * layers[1]):
        raise AdminError(f"legacy profile {path} has {len(enc)} encoder and {len(dec)} decoder values, but "
                         f"--encoder-layers {layers[0]} --decoder-layers {layers[1]} need {2 * layers[0]} and "
                         f"{3 * layers[1]}: give the layer counts of the model the profile was made for")
    if len(enc) % 2 or len(dec) % 3:
        raise AdminError(f"legacy profile {path}: {len(enc)} encoder values (2 per layer) and "
                         f"{len(dec)} decoder values (3 per layer) do not make whole layers")
    stacks = []
    for name, values, per in (("encoder", enc, 2), ("decoder", dec, 3)):
        names = sublayer_names(name, len(values) // per)
        stacks.append(validate_stack(path, name, StackProfile(
            len(values) // per, None, [SublayerStat(l, k, v) for (l, k), v in zip(names, values)])))
    return Profile(stacks[0], stacks[1], source=f"legacy:{os.path.basename(path)}")


def model_shape(model) -> dict:
    """Layer counts and widths of an AdminTransformerModel, as a profile records them."""
    return {"encoder": (len(model.encoder.layers), model.cfg.encoder.embed_dim),
            "decoder": (len(model.decoder.layers), model.cfg.decoder.embed_dim)}


def check_profile_matches(profile: Profile, model, path: str) -> None:
    """Raise one clear error if the profile was made for another shape of model."""
    shape = model_shape(model)

    def describe(get):
        return ", ".join(f"{s} {get(s)[0]} layers x {get(s)[1] or '?'} dims" for s in ("encoder", "decoder"))

    have = describe(lambda s: (profile.stack(s).layers, profile.stack(s).embed_dim))
    want = describe(lambda s: shape[s])
    for s in ("encoder", "decoder"):
        st = profile.stack(s)
        if st.layers != shape[s][0] or (st.embed_dim is not None and st.embed_dim != shape[s][1]):
            raise AdminError(f"profile {path} was made for {have}, but this model has {want}: "
                             "re-profile (drop --admin-profile) or use the matching --arch/sizes")


def apply_profile(profile: Profile, model) -> None:
    """Set every ω of the model from the profile (the model's shape must match)."""
    for stack in ("encoder", "decoder"):
        for scale, stat in zip(model.residual_scales(stack), profile.stack(stack).sublayers):
            scale.fill_(stat.omega)
    model.omega_ready = True


def format_table(profile: Profile) -> str:
    """The per-sublayer table (stack, layer, kind, variances, ω, β²) as text."""
    def num(v, fmt="{:.4g}"):
        return "-" if v is None else fmt.format(v)

    lines = [f"{'stack':8} {'layer':>5} {'sublayer':13} {'Var(r)':>9} {'Var(w*r)':>9} "
             f"{'Var(F)':>9} {'omega':>8} {'beta2':>7}"]
    for stack in ("encoder", "decoder"):
        for s in profile.stack(stack).sublayers:
            lines.append(f"{stack:8} {s.layer:>5} {s.kind:13} {num(s.var_input):>9} "
                         f"{num(s.var_shortcut):>9} {num(s.var_branch):>9} {s.omega:>8.4f} "
                         f"{num(s.beta2, '{:.3f}'):>7}")
    return "\n".join(lines)
