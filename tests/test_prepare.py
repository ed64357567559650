"""Corpus preparation: the reference's tokenization, cleaning and splits on small fixture text, then the
whole pipeline on a slice of the bundled real corpus (BPE, stamps, reruns)."""
import os

import pytest

from conftest import run_cli, write_sample
from fairseq_admin import AdminError
from fairseq_admin.tools.prepare import PrepareSettings, keep_pair, prepare_corpus, remove_non_printing, tokenize_lines

IWSLT, WMT = PrepareSettings.iwslt14(), PrepareSettings()


def _tok(line, settings, lang="en", normalize=None):
    return next(tokenize_lines([line], lang, settings, settings.normalize if normalize is None else normalize))


def test_iwslt_tokenization_keeps_hyphens_and_escapes():
    out = _tok("It's a \"well-known\" R&D trick.", IWSLT, normalize=False)
    # Moses -l en without -a: hyphenated words stay whole; escaping on; then lowercased
    assert out == "it &apos;s a &quot; well-known &quot; r &amp; d trick ."


def test_wmt_tokenization_splits_hyphens_normalizes_and_keeps_case():
    out = _tok("Das  ist „gut-gemacht“\u200b – oder?", WMT, lang="de")
    assert "gut @-@ gemacht" in out  # -a
    assert "Das" in out  # no lowercasing
    assert "&quot;" in out and "„" not in out and "“" not in out  # normalize-punctuation, then escaping
    assert "\u200b" not in out  # remove-non-printing-char
    # the test split is tokenized only: no normalisation, the zero-width space survives as Moses leaves it
    test = _tok("„gut“\u200b", WMT, lang="de", normalize=False)
    assert "„" in test


def test_remove_non_printing_is_a_space_per_character():
    assert remove_non_printing("a\u200bb\x07c\td") == "a b c d"


@pytest.mark.parametrize("src,tgt,settings,kept", [
    ("a b", "a b c d", WMT, True),  # ratio 2 passes the WMT clean (ratio 9)
    ("a b", "a b c d", IWSLT, False),  # ... not the IWSLT clean (ratio 1.5)
    ("a b", "a b c", IWSLT, True),  # ratio exactly 1.5 passes
    (" ".join("x" * 80), " ".join("y" * 80), WMT, True),
    (" ".join("x" * 81), " ".join("y" * 81), WMT, False),  # WMT lengths 1-80
    (" ".join("x" * 175), " ".join("y" * 175), IWSLT, True),  # IWSLT lengths 1-175
    ("", "a", WMT, False),  # an empty side is dropped
])
def test_clean_step(src, tgt, settings, kept):
    assert keep_pair(src, tgt, settings.min_len, settings.max_len, settings.max_ratio) is kept


def _write(folder, name, lines):
    (folder / name).write_text("".join(l + "\n" for l in lines), encoding="utf-8")


def test_iwslt_valid_is_lines_23_46_of_cleaned_train_and_only_train_is_cleaned(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    n = 60
    de = [f"Satz Nummer {i}" for i in range(1, n + 1)]
    en = [f"Sentence number {i}" for i in range(1, n + 1)]
    de[4], en[4] = "a", "a b c d e"  # dropped by the ratio-1.5 clean: cleaned line numbers shift by one
    _write(raw, "train.de", de), _write(raw, "train.en", en)
    _write(raw, "test.de", ["kurz", "Test"]), _write(raw, "test.en", ["a b c d e f", "Test"])  # never cleaned
    out = tmp_path / "prep"
    prepare_corpus(str(raw), str(out), "de", "en", PrepareSettings.iwslt14().__class__(
        **{**IWSLT.__dict__, "bpe_merges": 20}))
    valid = (out / "tok" / "valid.clean.en").read_text(encoding="utf-8").splitlines()
    train = (out / "tok" / "train.clean.en").read_text(encoding="utf-8").splitlines()
    # cleaned train = 59 lines (sentence 5 dropped); lines 23 and 46 of it are sentences 24 and 47
    assert valid == ["sentence number 24", "sentence number 47"]
    assert len(train) == 57 and "sentence number 24" not in train and "sentence number 23" in train
    assert (out / "tok" / "test.clean.en").read_text(encoding="utf-8").splitlines() == ["a b c d e f", "test"]


@pytest.fixture
def raw(tmp_path):
    folder = write_sample(tmp_path / "raw", {"train": 300, "valid": 20, "test": 20})
    for lang in ("de", "en"):  # one training pair far too long, one with a wild length ratio
        with open(folder / f"train.{lang}", "a", encoding="utf-8") as f:
            f.write(" ".join(["wort"] * 90) + "\n")
            f.write("a\n" if lang == "de" else " ".join(["x"] * 30) + "\n")
    return folder


def _settings(**kw):
    return PrepareSettings(**{**WMT.__dict__, "bpe_merges": 200, "lowercase": True, **kw})


def test_prepare_tokenizes_cleans_and_bpes(raw, tmp_path):
    out = tmp_path / "prep"
    prepare_corpus(str(raw), str(out), "de", "en", _settings())
    train_de = (out / "bpe" / "train.de").read_text(encoding="utf-8").splitlines()
    train_en = (out / "bpe" / "train.en").read_text(encoding="utf-8").splitlines()
    assert len(train_de) == len(train_en) == 300  # the two bad pairs are gone
    assert all(line == line.lower() for line in train_de)
    assert any("@@" in line for line in train_de)  # BPE applied
    assert len((out / "bpe" / "test.en").read_text().splitlines()) == 20  # test never filtered
    tok = (out / "tok" / "train.tok.de").read_text(encoding="utf-8")
    assert "libreoffice @-@ dokumenten" in tok  # Moses -a hyphen splitting
    # a rerun with the same settings and inputs reuses every output
    stamp = os.path.getmtime(out / "bpe" / "codes")
    prepare_corpus(str(raw), str(out), "de", "en", _settings())
    assert os.path.getmtime(out / "bpe" / "codes") == stamp


def test_rerun_with_other_settings_or_inputs_redoes_the_steps(raw, tmp_path):
    out = tmp_path / "prep"
    prepare_corpus(str(raw), str(out), "de", "en", _settings())
    codes = (out / "bpe" / "codes").read_text(encoding="utf-8")
    tok = os.path.getmtime(out / "tok" / "train.tok.en")
    prepare_corpus(str(raw), str(out), "de", "en", _settings(bpe_merges=50))  # other merges
    assert os.path.getmtime(out / "tok" / "train.tok.en") == tok  # only the steps the setting touches
    assert len((out / "bpe" / "codes").read_text(encoding="utf-8").splitlines()) < len(codes.splitlines())
    prepare_corpus(str(raw), str(out), "de", "en", _settings(bpe_merges=50, lowercase=False))  # case kept now
    assert any(c.isupper() for c in (out / "tok" / "train.tok.en").read_text(encoding="utf-8"))
    with open(raw / "train.en", "a", encoding="utf-8") as f, open(raw / "train.de", "a", encoding="utf-8") as g:
        f.write("a grown corpus\n"), g.write("ein gewachsenes korpus\n")
    prepare_corpus(str(raw), str(out), "de", "en", _settings(bpe_merges=50, lowercase=False))
    assert (out / "bpe" / "train.en").read_text(encoding="utf-8").splitlines()[-1].replace("@@ ", "") == "a grown corpus"


def test_only_newline_ends_a_line(raw, tmp_path):
    # \x0b, \x0c, \x85, U+2028 and U+2029 inside a line must not split it (str.splitlines would)
    for lang in ("de", "en"):
        with open(raw / f"train.{lang}", "a", encoding="utf-8") as f:
            f.write("eins\x0bzwei\x0cdrei\x85vier\u2028fünf\u2029sechs sieben\n")
    out = tmp_path / "prep"
    prepare_corpus(str(raw), str(out), "de", "en", _settings())
    for lang in ("de", "en"):
        lines = (out / "tok" / f"train.clean.{lang}").read_bytes().decode("utf-8").split("\n")[:-1]
        assert len(lines) == 301 and lines[-1].startswith("eins") and lines[-1].endswith("sieben")


def test_prepare_rejects_bad_corpus_folders(raw, tmp_path):
    os.remove(raw / "valid.en")
    with pytest.raises(AdminError, match="missing .*valid.en"):
        prepare_corpus(str(raw), str(tmp_path / "p"), "de", "en", _settings())
    (raw / "valid.en").write_text("only one line\n")
    with pytest.raises(AdminError, match="different line counts"):
        prepare_corpus(str(raw), str(tmp_path / "p"), "de", "en", _settings())
    (raw / "valid.en").write_bytes(b"ok\n" * 5 + b"caf\xe9\n" + b"ok\n" * 14)
    with pytest.raises(AdminError, match=r"valid.en: line 6 is not UTF-8"):
        prepare_corpus(str(raw), str(tmp_path / "p"), "de", "en", _settings())


def test_toggling_the_valid_split_never_leaves_a_stale_train_split(tmp_path):
    """prepare without, with, then without --valid-every into one folder: each run's splits are what a
    fresh folder gets (the valid-every step rewrites tok/train.clean.*, which the clean step had stamped)."""
    raw = write_sample(tmp_path / "raw", {"train": 300, "valid": 20, "test": 20})

    def run(out, *extra):
        proc = run_cli("fairseq_admin.tools.cli", "prepare", raw, out, "-s", "de", "-t", "en", "--bpe-merges", "50", *extra)
        assert proc.returncode == 0
        return {f: (out / "tok" / f).read_bytes() for f in ("train.clean.de", "valid.clean.de")}

    plain, split = run(tmp_path / "fresh-plain"), run(tmp_path / "fresh-split", "--valid-every", "23")
    assert plain != split
    shared = tmp_path / "shared"
    assert run(shared) == plain
    assert run(shared, "--valid-every", "23") == split
    assert run(shared) == plain


@pytest.mark.parametrize("flags,named", [(["--bpe-merges", "0"], "--bpe-merges 0"), (["--bpe-merges", "-5"], "--bpe-merges -5"),
                                         (["--max-len", "0"], "--max-len 0"), (["--valid-every", "-3"], "--valid-every -3"), (["--valid-every", "1"], "--valid-every 1"),
                                         (["--max-ratio", "0.5"], "--max-ratio 0.5")])
def test_impossible_settings_are_one_line(tmp_path, flags, named):
    raw = write_sample(tmp_path / "raw", {"train": 20, "valid": 5, "test": 5})
    proc = run_cli("fairseq_admin.tools.cli", "prepare", raw, tmp_path / "out", "-s", "de", "-t", "en", *flags, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"fairseq-admin: error: {named}:")
    assert not (tmp_path / "out" / "tok").exists()


def test_a_byte_order_mark_is_no_token(tmp_path):
    raw = write_sample(tmp_path / "raw", {"train": 30, "valid": 5, "test": 5})
    for split in ("train", "test"):
        for lang in ("de", "en"):
            path = raw / f"{split}.{lang}"
            path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    for style in ("wmt14", "iwslt14"):
        out = tmp_path / style
        run_cli("fairseq_admin.tools.cli", "prepare", raw, out, "-s", "de", "-t", "en", "--style", style, "--bpe-merges", "20")
        for split in ("train", "test"):
            first = (out / "tok" / f"{split}.clean.de").read_text(encoding="utf-8").splitlines()[0]
            assert "\ufeff" not in first and not first.startswith(" "), (style, split, first)


def test_an_empty_train_split_or_one_that_cleaning_empties_is_one_line(tmp_path):
    raw = write_sample(tmp_path / "raw", {"train": 3, "valid": 3, "test": 3})
    for lang in ("de", "en"):
        (raw / f"train.{lang}").write_text("", encoding="utf-8")
    proc = run_cli("fairseq_admin.tools.cli", "prepare", raw, tmp_path / "a", "-s", "de", "-t", "en", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "are empty" in proc.stderr.splitlines()[-1]
    (raw / "train.de").write_text("x " * 200 + "\n", encoding="utf-8")  # 200 tokens against 1: dropped
    (raw / "train.en").write_text("y\n", encoding="utf-8")
    proc = run_cli("fairseq_admin.tools.cli", "prepare", raw, tmp_path / "b", "-s", "de", "-t", "en", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no training pair is left after cleaning" in proc.stderr.splitlines()[-1]


@pytest.mark.parametrize("args,named", [(["/nonexistent"], "data folder '/nonexistent' does not exist"),
                                        ([ "/tmp", "--depths", "0,2"], "every layer count must be at least 1")])
def test_output_change_bad_input_is_one_line(args, named):
    proc = run_cli("fairseq_admin.tools.cli", "output-change", *args, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and named in proc.stderr.splitlines()[-1]


@pytest.mark.parametrize("args,expected", [
    (["de", "en", "--lowercase"], "missing /nonexistent/train.de"),  # merges optional: the option reaches prepare
    (["de", "en", "0"], "BPE_MERGES must be a positive number, not '0'"),
    (["de"], "usage: scripts/prepare_custom.sh RAW_DIR OUT SRC TGT"),
])
def test_prepare_custom_arguments(tmp_path, args, expected):
    import subprocess

    from conftest import ROOT
    proc = subprocess.run(["bash", "scripts/prepare_custom.sh", "/nonexistent", str(tmp_path / "out"), *args],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if "error:" in l]
    assert len(lines) == 1 and expected in lines[0], proc.stderr[-2000:]


@pytest.mark.parametrize("args,expected", [
    (["/nonexistent", "bin", "de", "en"], "no /nonexistent/train.de: BPE_DIR needs {train,valid,test}.{de,en}"),
    (["/nonexistent"], "usage: scripts/binarize.sh BPE_DIR BIN_DIR SRC TGT"),
])
def test_binarize_arguments(tmp_path, args, expected):
    import subprocess

    from conftest import ROOT
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "binarize.sh"), *args], capture_output=True,
                          text=True, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"binarize.sh: error: {expected}"), lines
    assert not (tmp_path / "bin").exists()


def test_long_valid_or_test_lines_are_kept_and_named(tmp_path, caplog):
    from fairseq_admin.tools.prepare import warn_long_lines
    path = tmp_path / "valid.de"
    path.write_text("kurz\n" + " ".join(["wort"] * 1100) + "\nauch kurz\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        assert warn_long_lines(str(path)) == [2]
    assert "1 line(s) longer than fairseq's 1024 positions (line 2); they are kept" in caplog.text
    assert "--skip-invalid-size-inputs-valid-test" in caplog.text


def test_fairseqs_invalid_size_error_is_one_line(capsys):
    from fairseq_admin.errors import _excepthook
    exc = Exception("Size of sample #7 is invalid (=(1101, 5)) since max_positions=(1024, 1024), skip this "
                    "example with --skip-invalid-size-inputs-valid-test")
    _excepthook(Exception, exc, None)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fairseq-admin: error: Size of sample #7 is invalid")
