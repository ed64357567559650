"""Preparation equals the Moses Perl scripts' output: one fixture per rule where sacremoses alone differs.

Expected outputs are derived by hand from the Perl code (mosesdecoder master: tokenizer.perl,
normalize-punctuation.perl, remove-non-printing-char.perl, lowercase.perl, clean-corpus-n.perl).
"""
import os
import re
import shutil
import subprocess

import pytest

from fairseq_admin.tools import moses, perl_unicode
from fairseq_admin.tools.prepare import PrepareSettings, prepare_corpus, tokenize_lines

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WMT, IWSLT = PrepareSettings(), PrepareSettings.iwslt14()


def tok(line, lang="de", settings=WMT, normalize=False):
    return next(tokenize_lines([line], lang, settings, normalize))


@pytest.mark.parametrize("line,expected", [
    # (a) the last word's period is split unconditionally, prefixes and inner dots notwithstanding
    ("Wir sahen Hunde, Katzen usw.", "Wir sahen Hunde , Katzen usw ."),
    ("Der Preis steigt um 3 Mio.", "Der Preis steigt um 3 Mio ."),
    ("It happened in 33 A.D.", "It happened in 33 A.D ."),
    ("is located in content.xml.", "is located in content.xml ."),
    ("BefehlStrg+C.", "BefehlStrg + C ."),
    ("den Wert 20.", "den Wert 20 ."),
    # ... but not before the end: a prefix followed by a lower-case word stays, as before
    ("Er kam z. B. nach Hause.", "Er kam z. B. nach Hause ."),
    ("Hunde usw. sind hier.", "Hunde usw. sind hier ."),
    # the last word is the last token: after a separated ')' the prefix rules apply again
    ("(Katzen usw.)", "( Katzen usw. )"),
])
def test_final_period(line, expected):
    assert tok(line) == expected


@pytest.mark.parametrize("line,expected", [
    # (b) Perl's \p{IsAlnum} holds Han, Hangul and letters beyond the BMP: they are not padded
    ('=LINKSB("中国";1)', "= LINKSB ( &quot; 中国 &quot; ; 1 )"),
    ("한국어 텍스트", "한국어 텍스트"),
    ("𝒜𝓁𝓅𝒽𝒶 Zeichen", "𝒜𝓁𝓅𝒽𝒶 Zeichen"),
    # -a splits a hyphen between two of Perl's alphanumerics, Han included
    ("中-国", "中 @-@ 国"),
])
def test_perl_character_classes(line, expected):
    assert tok(line) == expected


def test_perl_classes_are_version_independent():
    # the tables, not Python's unicodedata, decide: a few facts of Perl 5.36 / Unicode 14
    alnum = re.compile(f"[{moses.perl_class('IsAlnum')}]")
    assert alnum.match("中") and alnum.match("한") and alnum.match("\U0001d49c") and not alnum.match("€")
    assert re.match(f"[{moses.perl_class('IsN')}]", "½") and re.match(f"[{moses.perl_class('IsLower')}]", "ß")
    assert moses.perl_lc("ΟΔΟΣ İ ẞ Ǆ") == "οδοσ i\u0307 ß ǆ"  # Perl's lc: σ, never the final ς


def test_tables_are_what_this_perl_gives(tmp_path):
    """The committed tables regenerate unchanged with the Perl they name (when that Perl is here)."""
    perl = shutil.which("perl")
    assert perl, "perl is needed to check the tables (Debian: apt install perl)"
    version = subprocess.run([perl, "-e", "print $^V"], capture_output=True, text=True).stdout
    if version != perl_unicode.PERL_VERSION:
        # another Perl: its Unicode may differ, the tables stay the reference's; check their own shape
        assert perl_unicode.UNICODE_VERSION == "14.0.0" and len(perl_unicode.LOWER) > 1000
        return
    out = subprocess.run([perl, os.path.join(ROOT, "scripts", "perl_unicode_tables.pl")], capture_output=True,
                         check=True).stdout
    with open(os.path.join(ROOT, "fairseq_admin", "tools", "perl_unicode.py"), "rb") as f:
        assert f.read() == out


@pytest.mark.parametrize("line,lang,expected", [
    # (c) bytes semantics, the newline seen: the period moves before a closing quote at the end too
    ("Er sagte: „Das ist gut.“", "de", 'Er sagte: "Das ist gut".'),
    ('Er sagte "gut." und ging.', "de", 'Er sagte "gut". und ging.'),
    ('He said "good."', "en", 'He said "good."'),
    ('He said "good", then.', "en", 'He said "good," then.'),  # English style: the comma goes inside
    # \d is ASCII only: full-width digits keep their space, ASCII ones join (German: with a comma)
    ("１ ２ und 1 000", "de", "１ ２ und 1,000"),
    ("1 000", "en", "1.000"),
    # [a-z] with /i is ASCII only (a dotless ı is no letter there), so ’ becomes a quote
    ("aı’ıb", "de", 'aı"ıb'),
    ("don’t", "en", "don't"),
    ("(a ) b ( c)", "de", " (a) b (c) "),  # the spaces the bracket rules add at the ends stay
])
def test_normalize_punctuation(line, lang, expected):
    assert moses.normalize_punctuation(line, lang) == expected


def test_normalize_then_tokenize_end_quote():
    assert tok("Er sagte: „Das ist gut.“", normalize=True) == "Er sagte : &quot; Das ist gut &quot; ."


@pytest.mark.parametrize("line,expected", [
    ("a\u200bb\x07c\td", "a b c d"),
    ("\U000e0001tag\ufeff", " tag "),  # \p{C} includes format characters beyond the BMP
    ("\U00031350x", " x"),  # unassigned in Unicode 14 (assigned in 15): \p{Cn} for Perl 5.36
])
def test_remove_non_printing(line, expected):
    assert moses.remove_non_printing(line) == expected


def test_tokenizer_whitespace_and_junk():
    assert tok("   ") == "   "  # printed as it is (/^\s*$/)
    assert tok("\t") == "\t"
    assert tok("ein\x1cwort") == "einwort"  # ASCII junk deleted after Perl's \s (which lacks \x1c)
    assert tok("Geschützte\u00a0Leerzeichen") == "Geschützte Leerzeichen"
    assert tok("End with quote.'", lang="en") == "End with quote . &apos; "  # Perl keeps this trailing space
    assert tok("Ende mit Quote.'") == "Ende mit Quote . &apos;"  # German: ' is split off before


def test_lowercase_is_perls_lc():
    assert tok("ΟΔΟΣ ΣΟΦΙΑΣ", settings=IWSLT) == "οδοσ σοφιασ"


def test_clean_corpus():
    pairs = [("a | b", "x y"), ("a " + "w" * 1001, "x y"), ("a " + "w" * 1000, "x y"), ("", "x"), ("   ", "x"),
             ("a b c", "x y"), ("a  b\u00a0c", "x y z")]
    kept = list(moses.clean_corpus(pairs, 1, 80, 1.5))
    # the first line holds a '|': a factored corpus, '|' kept
    assert kept[0] == ("a | b", "x y")
    assert ("a " + "w" * 1001, "x y") not in kept and ("a " + "w" * 1000, "x y") in kept  # over 1,000 chars
    assert ("a b c", "x y") in kept  # 3/2 = 1.5 is not above the ratio
    assert kept[-1] == ("a b c", "x y z")  # Perl's \s (NBSP included) collapsed to one space
    assert len(kept) == 4
    # not factored (no '|' on the first line): '|' is removed before counting and writing
    assert list(moses.clean_corpus([("a b", "x y"), ("a | b", "x y")], 1, 80, 9)) == [("a b", "x y"), ("a b", "x y")]


def test_iwslt14_pairs_and_valid_split_follow_the_final_period_rule(tmp_path):
    """A pair that rule (a) keeps (3 vs 4 tokens) and sacremoses alone drops (2 vs 4, ratio 2 > 1.5):
    the counts and, through 'valid = every 23rd cleaned line', the valid sentence depend on it."""
    raw = tmp_path / "raw"
    raw.mkdir()
    de = [f"Satz Nummer {i} hier" for i in range(40)]
    en = [f"sentence number {i} here" for i in range(40)]
    de.insert(5, "Katzen usw.")
    en.insert(5, "cats and so on")
    (raw / "train.de").write_text("".join(x + "\n" for x in de), encoding="utf-8")
    (raw / "train.en").write_text("".join(x + "\n" for x in en), encoding="utf-8")
    (raw / "test.de").write_text("Ende usw.\n", encoding="utf-8")
    (raw / "test.en").write_text("end\n", encoding="utf-8")
    prepare_corpus(str(raw), str(tmp_path / "out"), "de", "en", PrepareSettings.iwslt14().__class__(
        **{**PrepareSettings.iwslt14().__dict__, "bpe_merges": 20}))
    out = tmp_path / "out" / "tok"
    valid = (out / "valid.clean.de").read_text(encoding="utf-8").splitlines()
    train = (out / "train.clean.de").read_text(encoding="utf-8").splitlines()
    assert len(train) + len(valid) == 41  # all kept, "katzen usw ." included
    assert "katzen usw ." in train
    assert valid == ["satz nummer 21 hier"]  # the 23rd cleaned line (the inserted pair comes before it)
    assert (out / "test.clean.de").read_text(encoding="utf-8") == "ende usw .\n"
