"""The profile file: round trip, legacy import, validation and rejections, atomic writes."""
import json
import subprocess
import sys
import os

import pytest

from conftest import build
from fairseq_admin import AdminError
from fairseq_admin.files import atomic_write
from fairseq_admin.profile_file import (
    Profile,
    StackProfile,
    SublayerStat,
    apply_profile,
    check_profile_matches,
    read_profile,
    write_profile,
)
from fairseq_admin.omega import sublayer_names


def make_profile(enc=2, dec=2, dim=32, start=1.0):
    def stack(name, n):
        return StackProfile(n, dim, [SublayerStat(l, k, start + 0.1 * i, 1.0, (start + 0.1 * i) ** 2, 0.3)
                                     for i, (l, k) in enumerate(sublayer_names(name, n))])
    return Profile(stack("encoder", enc), stack("decoder", dec), seed=1, tokens=100, sentences=4)


def test_round_trip(tmp_path):
    p = make_profile()
    path = tmp_path / "p.json"
    write_profile(p, str(path))
    d = json.loads(path.read_text())
    for key in ("format", "version", "encoder", "decoder", "seed", "tokens", "versions", "padding"):
        assert key in d
    assert d["encoder"]["layers"] == 2 and d["encoder"]["embed_dim"] == 32
    assert {"fairseq", "fairseq_admin", "torch"} <= set(d["versions"])
    q = read_profile(str(path))
    assert q.to_dict() == d
    assert q.encoder.sublayers[1].beta2 == pytest.approx(0.3 / (1.1 ** 2 + 0.3))


def test_legacy_index_value_and_bare_formats(tmp_path):
    enc = [1.0, 1.5, 1.7, 1.9]           # 2 encoder layers x 2
    dec = [1.0, 1.3, 1.6, 1.8, 2.0, 2.2]  # 2 decoder layers x 3
    indexed = tmp_path / "profile.ratio.init"
    indexed.write_text("".join(f"{i + 1} {v}\n" for i, v in enumerate(enc))
                       + "".join(f"{i + 1} {v}\n" for i, v in enumerate(dec)))
    p = read_profile(str(indexed))
    assert [s.omega for s in p.encoder.sublayers] == enc and [s.omega for s in p.decoder.sublayers] == dec
    assert p.encoder.layers == 2 and p.decoder.layers == 2 and p.source.startswith("legacy:")
    bare = tmp_path / "bare.txt"
    bare.write_text("".join(f"{v}\n" for v in enc + dec))
    with pytest.raises(AdminError, match="layer counts"):
        read_profile(str(bare))
    q = read_profile(str(bare), layers=(2, 2))
    assert [s.omega for s in q.decoder.sublayers] == dec


@pytest.mark.parametrize("content,message", [
    ("", "is empty"),
    ('{"format": "fairseq-admin-profile", "version": 1, "encoder": {"lay', "not valid JSON"),
    ('{"hello": 1}', "not a fairseq-admin profile"),
    ('{"format": "fairseq-admin-profile", "version": 99}', "format version 99"),
    ("1 2 3\n", "neither JSON nor a legacy"),
    ("1 1.0\n2 1.2\n3 1.4\n1 1.0\n", "whole layers"),
])
def test_bad_files_are_rejected_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(AdminError, match=message) as e:
        read_profile(str(path))
    assert "\n" not in str(e.value)


def test_missing_and_non_positive_omega(tmp_path):
    with pytest.raises(AdminError, match="does not exist"):
        read_profile(str(tmp_path / "nope.json"))
    d = make_profile().to_dict()
    d["decoder"]["sublayers"][2]["omega"] = -1
    path = tmp_path / "neg.json"
    path.write_text(json.dumps(d))
    with pytest.raises(AdminError, match="decoder layer 0 ffn has ω = -1"):
        read_profile(str(path))


def test_shape_mismatch_names_both_shapes(bin_data):
    _, _, model = build(bin_data, "--admin-init", "ones")
    with pytest.raises(AdminError, match=r"made for encoder 3 layers x 32 dims.*model has encoder 2 layers x 32"):
        check_profile_matches(make_profile(enc=3), model, "p.json")
    with pytest.raises(AdminError, match=r"decoder 2 layers x 64 dims.*decoder 2 layers x 32"):
        check_profile_matches(make_profile(dim=64), model, "p.json")
    good = make_profile(start=1.5)
    check_profile_matches(good, model, "p.json")
    apply_profile(good, model)
    assert model.residual_scales("decoder")[5].omega[0].item() == pytest.approx(2.0)


def test_atomic_write_keeps_the_old_file_on_interruption(tmp_path):
    path = tmp_path / "p.json"
    write_profile(make_profile(), str(path))
    before = path.read_text()

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write('{"half')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(path), broken)
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["p.json"]
    # a SIGKILL leaves the temporary behind (no cleanup runs): the next write of that file removes it
    (tmp_path / ".p.json.abc123.tmp").write_text('{"half')
    (tmp_path / ".other.json.abc123.tmp").write_text("not ours")
    write_profile(make_profile(), str(path))
    assert sorted(os.listdir(tmp_path)) == [".other.json.abc123.tmp", "p.json"]


@pytest.mark.parametrize("value", ["-1.5", "0", "1e-300", "nan", "inf", "1e300", "1e400"])
def test_legacy_profiles_get_the_same_checks_as_json(tmp_path, value):
    # one validation for every source: a bad ω in a legacy file is refused when read and when imported
    legacy = tmp_path / "profile.ratio.init"
    values = ["1.0", "1.2", value, "1.5"] + ["1.0", "1.1", "1.3", "1.4", "1.6", "1.7"]
    idx = [f"{i} {v}" for i, v in enumerate(values[:4], 1)] + [f"{i} {v}" for i, v in enumerate(values[4:], 1)]
    legacy.write_text("\n".join(idx) + "\n")
    with pytest.raises(AdminError, match=r"encoder layer 1 self_attn has ω = .*not a number from 0.001 to"):
        read_profile(str(legacy))
    proc = subprocess.run([sys.executable, "-m", "fairseq_admin.tools.cli", "import-profile", str(legacy),
                           str(tmp_path / "out.json")], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("fairseq-admin: error: profile")
    assert not (tmp_path / "out.json").exists()


def test_import_profile_checks_both_stacks(tmp_path):
    from fairseq_admin import AdminError
    from fairseq_admin.profile_file import read_profile

    legacy = tmp_path / "profile.ratio.init"
    legacy.write_text("".join(f"{1 + i / 10}\n" for i in range(13)))
    with pytest.raises(AdminError, match="13 values, but 2 encoder and 2 decoder layers need 2 x 2 \\+ 3 x 2 = 10"):
        read_profile(str(legacy), layers=(2, 2))
    assert read_profile(str(legacy), layers=(2, 3)).decoder.layers == 3  # 4 + 9 = 13
    indexed = tmp_path / "indexed"
    indexed.write_text("".join(f"{i} 1.{i}\n" for i in range(1, 5)) + "".join(f"{i} 2.{i}\n" for i in range(1, 10)))
    with pytest.raises(AdminError, match="--decoder-layers 2 need 4 and 6"):
        read_profile(str(indexed), layers=(2, 2))


@pytest.mark.parametrize("edit,named", [
    (lambda d: d["encoder"]["sublayers"][0].update(omega=1e-300), "not a number from 0.001"),
    (lambda d: d["encoder"]["sublayers"][1].update(var_input="1.0"), "var_input = '1.0', not a non-negative number"),
    (lambda d: d["decoder"].update(embed_dim="32"), "embed_dim is '32', not a whole number"),
])
def test_wrong_values_in_a_profile_are_one_line(tmp_path, edit, named):
    import json

    from fairseq_admin import AdminError
    from fairseq_admin.profile_file import read_profile

    good = tmp_path / "good.json"
    legacy = tmp_path / "legacy"
    legacy.write_text("".join(f"{1 + i / 10}\n" for i in range(10)))
    from fairseq_admin.profile_file import write_profile
    profile = read_profile(str(legacy), layers=(2, 2))
    profile.encoder.embed_dim = profile.decoder.embed_dim = 32
    for st in (profile.encoder, profile.decoder):
        for s in st.sublayers:
            s.var_input = s.var_shortcut = s.var_branch = 1.0
    write_profile(profile, str(good))
    d = json.loads(good.read_text())
    edit(d)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(AdminError, match=named):
        read_profile(str(bad))


def test_deep_json_and_folders_are_one_line(tmp_path):
    from fairseq_admin import AdminError
    from fairseq_admin.profile_file import read_profile, write_profile

    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 100000 + "1" + "}" * 100000)
    with pytest.raises(AdminError, match="nested too deeply"):
        read_profile(str(deep))
    with pytest.raises(AdminError, match="is a folder"):
        read_profile(str(tmp_path))
    legacy = tmp_path / "legacy"
    legacy.write_text("".join(f"{1 + i / 10}\n" for i in range(10)))
    with pytest.raises(AdminError, match="it is a folder"):
        write_profile(read_profile(str(legacy), layers=(2, 2)), str(tmp_path))
