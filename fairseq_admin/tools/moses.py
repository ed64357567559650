"""The Moses preprocessing scripts, byte for byte: what the Admin reference ran (mosesdecoder master).

sacremoses is the engine; this module is the one place where its output is brought back to the Perl
scripts' (read in moses-smt/mosesdecoder: scripts/tokenizer/{tokenizer,normalize-punctuation,
remove-non-printing-char,lowercase}.perl, scripts/training/clean-corpus-n.perl). The corrections:

a. tokenizer.perl always splits the period of a line's LAST word (since mosesdecoder PR 204, 2018),
   also after a nonbreaking prefix or inside a word with dots (``usw.`` -> ``usw .``, ``A.D.`` ->
   ``A.D .``); sacremoses keeps those joined (its issue 97).
b. Perl's character classes (\\p{IsAlnum}, \\p{IsAlpha}, \\p{IsN}, \\p{IsLower}, \\p{Ll}, \\p{C}, \\s)
   and lc() come from the Unicode tables of the Perl that generated perl_unicode.py (Perl 5.36,
   Unicode 14), not from sacremoses' fixed tables (which lack Han, Hangul and characters beyond the
   BMP) nor from Python's unicodedata (whose version moves with Python). lc() maps Σ to σ everywhere
   (Python's str.lower writes ς at the end of a word).
c. normalize-punctuation.perl runs on bytes (no ``use utf8``), on each line WITH its newline: \\d,
   \\s and [a-z] are ASCII only, and the German/Spanish/French rule that moves a period in front of a
   closing quote also fires at the end of a line (``gut."`` -> ``gut".``).
d. clean-corpus-n.perl also drops a pair when a token is longer than 1,000 characters, removes '|'
   unless the first line holds one (factored corpora), and compares length ratios by division.
e. tokenizer.perl passes a line of whitespace only through unchanged, and keeps the space its
   sentence-final ``.'`` rule leaves at the end of a line; its languages' own apostrophe and colon rules
   (fi, sv, ca, ga, so, tdt) are applied as Perl groups them.
"""
import re
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

from . import perl_unicode

#: recorded in each preparation step's stamp: outputs of another engine version are redone
ENGINE = f"moses-perl-parity 1 (Perl {perl_unicode.PERL_VERSION}, Unicode {perl_unicode.UNICODE_VERSION})"


@lru_cache(maxsize=None)
def perl_class(name: str) -> str:
    """The body of a regex character class (no brackets) for one of Perl's classes."""
    parts = []
    for lo, hi in perl_unicode.RANGES[name]:
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
    return "".join(parts)


_LOWER = {cp: "".join(map(chr, cps)) for cp, cps in perl_unicode.LOWER.items()}
_NON_PRINTING = None


def perl_lc(text: str) -> str:
    """Perl's lc() (lowercase.perl): each character by Perl's own full lowercase mapping."""
    return text.translate(_LOWER)


def remove_non_printing(line: str) -> str:
    """remove-non-printing-char.perl: every character of \\p{C} becomes a space."""
    global _NON_PRINTING
    if _NON_PRINTING is None:
        _NON_PRINTING = re.compile(f"[{perl_class('C')}]")
    return _NON_PRINTING.sub(" ", line)


# --- normalize-punctuation.perl (bytes semantics: ASCII \d, \s and letters) ------------------------
_S = r"[ \t\n\x0b\x0c\r]"  # Perl's \s on a byte string
_NORMALIZE_COMMON = [
    (r"\r", ""), (r"\(", " ("), (r"\)", ") "), (r" +", " "), (r"\) ([\.\!\:\?\;\,])", r")\1"),
    (r"\( ", "("), (r" \)", ")"), (r"([0-9]) \%", r"\1%"), (r" :", ":"), (r" ;", ";"),
]
_NORMALIZE_NOT_PENN = [(r"`", "'"), (r"''", ' " ')]
_NORMALIZE_UNICODE = [
    ("„", '"'), ("“", '"'), ("”", '"'), ("–", "-"), ("—", " - "), (r" +", " "), ("´", "'"),
    (r"([a-zA-Z])‘([a-zA-Z])", r"\1'\2"), (r"([a-zA-Z])’([a-zA-Z])", r"\1'\2"), ("‘", '"'), ("‚", '"'),
    ("’", '"'), ("''", '"'), ("´´", '"'), ("…", "..."),
    (" « ", ' "'), ("« ", '"'), ("«", '"'), (" » ", '" '), (" »", '"'), ("»", '"'),
    (r" \%", "%"), ("nº ", "nº "), (r" :", ":"), (" ºC", " ºC"), (" cm", " cm"), (r" \?", "?"),
    (r" \!", "!"), (r" ;", ";"), (", ", ", "), (r" +", " "),
]
_NORMALIZE_EN = [(r'"([,\.]+)', r'\1"')]
_NORMALIZE_OTHER = [(r',"', '",'), (r'(\.+)"(' + _S + r'*[^<])', r'"\1\2')]


@lru_cache(maxsize=None)
def _normalize_rules(lang: str, penn: bool = False) -> List[Tuple[re.Pattern, str]]:
    rules = _NORMALIZE_COMMON + ([] if penn else _NORMALIZE_NOT_PENN) + _NORMALIZE_UNICODE
    if lang == "en":
        rules += _NORMALIZE_EN
    elif lang not in ("cs", "cz"):
        rules += _NORMALIZE_OTHER
    if lang in ("de", "es", "cz", "cs", "fr"):
        rules += [(r"([0-9]) ([0-9])", r"\1,\2")]
    else:
        rules += [(r"([0-9]) ([0-9])", r"\1.\2")]
    return [(re.compile(p), r) for p, r in rules]


def normalize_punctuation(line: str, lang: str) -> str:
    """normalize-punctuation.perl -l LANG on one line (given without its newline): the rules see the
    newline, as Perl's ``while (<STDIN>)`` does, and it is removed afterwards."""
    text = line + "\n"
    for pattern, repl in _normalize_rules(lang):
        text = pattern.sub(repl, text)
    return text[:-1] if text.endswith("\n") else text


# --- tokenizer.perl -------------------------------------------------------------------------------
class _Rules:
    """A list of (pattern, replacement) applied in order; stands in for one of sacremoses' single
    (regex, replacement) attributes where Perl applies several rules (``.sub(_, text)``)."""

    def __init__(self, rules):
        self.rules = [(re.compile(p), r) for p, r in rules]

    def sub(self, _unused, text):
        for pattern, repl in self.rules:
            text = pattern.sub(repl, text)
        return text


def _tokenizer_class():
    from sacremoses import MosesTokenizer

    class PerlMosesTokenizer(MosesTokenizer):
        """sacremoses' MosesTokenizer with tokenizer.perl's classes, last-word rule and language rules."""

        def __init__(self, lang: str = "en"):
            super().__init__(lang=lang)
            alnum, alpha, n = perl_class("IsAlnum"), perl_class("IsAlpha"), perl_class("IsN")
            # Perl's \s (not Python's, which also takes \x1c-\x1f: Perl deletes those as ASCII junk)
            self.DEDUPLICATE_SPACE = re.compile(f"[{perl_class('space')}]+"), " "
            self._lower_first = re.compile(f"[{perl_class('IsLower')}]")
            self._alpha = re.compile(f"[{alpha}]")
            self._space_only = re.compile(f"[{perl_class('space')}]*")
            # tokenizer.perl's prefix hash, in file order (a later line wins, as in Perl)
            self.prefix_kind: Dict[str, int] = {}
            for item in self.NONBREAKING_PREFIXES:
                m = re.search(r"(.*)\s+(#NUMERIC_ONLY#)", item)
                if m:
                    self.prefix_kind[m.group(1)] = 2
                else:
                    self.prefix_kind[item] = 1
            if lang in ("fi", "sv"):
                pad = [(rf"([^{alnum}\s\.\:'`\,\-])", r" \1 "), (r"(:)(?=$|[^" + perl_class("Ll") + "])", r" \1 ")]
            elif lang == "tdt":
                pad = [(rf"([^{alnum}\s\.'`\,\-])", r" \1 "), (r"(')(?=$|[^" + perl_class("Ll") + "])", r" \1 ")]
            elif lang == "ca":
                pad = [(rf"([^{alnum}\s\.·'`\,\-])", r" \1 "), (r"(·)(?=$|[^" + perl_class("Ll") + "])", r" \1 ")]
            else:
                pad = [(rf"([^{alnum}\s\.'`\,\-])", r" \1 ")]
            self.PAD_NOT_ISALNUM = _Rules(pad), None
            self.AGGRESSIVE_HYPHEN_SPLIT = re.compile(rf"([{alnum}])\-(?=[{alnum}])"), r"\1 @-@ "
            self.COMMA_SEPARATE_1 = re.compile(rf"([^{n}])[,]"), r"\1 , "
            self.COMMA_SEPARATE_2 = re.compile(rf"[,]([^{n}])"), r" , \1"
            self.COMMA_SEPARATE_3 = re.compile(rf"([{n}])[,]$"), r"\1 ,"
            english = [(rf"([^{alpha}])[']([^{alpha}])", r"\1 ' \2"), (rf"([^{alpha}{n}])[']([{alpha}])", r"\1 ' \2"),
                       (rf"([{alpha}])[']([^{alpha}])", r"\1 ' \2"), (rf"([{alpha}])[']([{alpha}])", r"\1 '\2"),
                       (rf"([{n}])[']([s])", r"\1 '\2")]
            left = [(rf"([^{alpha}])[']([^{alpha}])", r"\1 ' \2"), (rf"([^{alpha}])[']([{alpha}])", r"\1 ' \2"),
                    (rf"([{alpha}])[']([^{alpha}])", r"\1 ' \2"), (rf"([{alpha}])[']([{alpha}])", r"\1' \2")]
            glottal = left[:3]
            self.ENGLISH_SPECIFIC_APOSTROPHE = [(re.compile(p), r) for p, r in english]
            self.FR_IT_SPECIFIC_APOSTROPHE = [(re.compile(p), r) for p, r in left]
            # sacremoses branches on en / fr, it / the rest; Perl's other groups go through the last
            if lang in ("ga", "ca"):
                self.NON_SPECIFIC_APOSTROPHE = _Rules(left), None
            elif lang in ("so", "tdt"):
                self.NON_SPECIFIC_APOSTROPHE = _Rules(glottal), None

        def isanyalpha(self, text):
            return bool(self._alpha.search(text))

        def handles_nonbreaking_prefixes(self, text):
            # tokenizer.perl's word loop: split on single whitespace (empty fields kept, trailing
            # ones dropped as Perl's split does), the last word's period always split off
            words = text.split(" ")
            while words and words[-1] == "":
                words.pop()
            last = len(words) - 1
            for i, word in enumerate(words):
                m = re.match(r"(\S+)\.$", word)
                if not m:
                    continue
                pre = m.group(1)
                following = words[i + 1] if i < last else None
                if i == last:
                    words[i] = pre + " ."
                elif (("." in pre and self._alpha.search(pre)) or self.prefix_kind.get(pre) == 1
                      or (following is not None and self._lower_first.match(following))):
                    pass
                elif self.prefix_kind.get(pre) == 2 and following is not None and re.match(r"[0-9]+", following):
                    pass
                else:
                    words[i] = pre + " ."
            return " ".join(words) + " "

        def tokenize_line(self, line: str, aggressive: bool, escape: bool) -> str:
            if self._space_only.fullmatch(line):
                return line  # tokenizer.perl prints whitespace-only lines as they are
            return self.tokenize(line, aggressive_dash_splits=aggressive, return_str=True, escape=escape)

    return PerlMosesTokenizer


_TOKENIZER_CLASS = None


def tokenizer(lang: str):
    """A tokenizer.perl -l LANG equivalent (call .tokenize_line(line, aggressive, escape))."""
    global _TOKENIZER_CLASS
    if _TOKENIZER_CLASS is None:
        _TOKENIZER_CLASS = _tokenizer_class()
    return _TOKENIZER_CLASS(lang)


# --- clean-corpus-n.perl --------------------------------------------------------------------------
_CLEAN_SPACE = None


def clean_corpus(pairs, min_len: int, max_len: int, ratio: float, max_word_length: int = 1000):
    """clean-corpus-n.perl [-ratio R] on (source, target) line pairs: yields the kept pairs as it writes
    them (whitespace runs made single spaces, ends trimmed, '|' removed unless the first line has one)."""
    global _CLEAN_SPACE
    if _CLEAN_SPACE is None:
        _CLEAN_SPACE = re.compile(f"[{perl_class('space')}]+")
    too_long = re.compile(r"[^" + perl_class("space") + r"\|]{" + str(max_word_length + 1) + "}")
    factored: Optional[bool] = None
    for f, e in pairs:
        if factored is None:
            factored = "|" in e or "|" in f
        sides = []
        for text in (f, e):
            if not factored:
                text = text.replace("|", "")
            text = _CLEAN_SPACE.sub(" ", text)
            text = text[1:] if text.startswith(" ") else text
            text = text[:-1] if text.endswith(" ") else text
            sides.append(text)
        f, e = sides
        if f == "" or e == "":
            continue
        fc, ec = len(f.split(" ")), len(e.split(" "))
        if ec > max_len or fc > max_len or ec < min_len or fc < min_len:
            continue
        if ec / fc > ratio or fc / ec > ratio:
            continue
        if too_long.search(e) or too_long.search(f):
            continue
        yield f, e
