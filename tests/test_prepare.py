"""Corpus preparation on a small slice of the bundled real corpus: tokenize, clean, joint BPE, resume."""
import os

import pytest

from conftest import SAMPLE
from fairseq_admin import AdminError
from fairseq_admin.prepare import prepare_corpus


@pytest.fixture
def raw(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    for split, n in (("train", 300), ("valid", 20), ("test", 20)):
        for lang in ("de", "en"):
            with open(os.path.join(SAMPLE, f"{split}.{lang}"), encoding="utf-8") as f:
                lines = [next(f) for _ in range(n)]
            if split == "train":  # one pair far too long, one with a wild length ratio
                lines.append(" ".join(["wort"] * 90) + "\n")
                lines.append(("a\n" if lang == "de" else " ".join(["x"] * 30) + "\n"))
            (folder / f"{split}.{lang}").write_text("".join(lines), encoding="utf-8")
    return folder


def test_prepare_tokenizes_cleans_and_bpes(raw, tmp_path):
    out = tmp_path / "prep"
    prepare_corpus(str(raw), str(out), "de", "en", bpe_merges=200, lowercase=True, max_len=80, max_ratio=9)
    train_de = (out / "bpe" / "train.de").read_text(encoding="utf-8").splitlines()
    train_en = (out / "bpe" / "train.en").read_text(encoding="utf-8").splitlines()
    assert len(train_de) == len(train_en) == 300  # the two bad pairs are gone
    assert all(line == line.lower() for line in train_de)
    assert any("@@" in line for line in train_de)  # BPE applied
    assert len((out / "bpe" / "test.en").read_text().splitlines()) == 20  # test never filtered
    tok = (out / "tok" / "train.raw.de").read_text(encoding="utf-8")
    assert "libreoffice @-@ dokumenten" in tok  # Moses -a hyphen splitting
    # a rerun skips finished steps (outputs untouched)
    stamp = os.path.getmtime(out / "bpe" / "codes")
    prepare_corpus(str(raw), str(out), "de", "en", bpe_merges=200, lowercase=True, max_ratio=9)
    assert os.path.getmtime(out / "bpe" / "codes") == stamp


def test_prepare_rejects_bad_corpus_folders(raw, tmp_path):
    os.remove(raw / "valid.en")
    with pytest.raises(AdminError, match="missing .*valid.en"):
        prepare_corpus(str(raw), str(tmp_path / "p"), "de", "en", 100, True)
    (raw / "valid.en").write_text("only one line\n")
    with pytest.raises(AdminError, match="different line counts"):
        prepare_corpus(str(raw), str(tmp_path / "p"), "de", "en", 100, True)
