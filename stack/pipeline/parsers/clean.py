"""One text clean-up shared by every parser."""

from __future__ import annotations

import re
import unicodedata

# Private-use areas: BMP (U+E000–U+F8FF) and supplementary planes 15 and 16. Lone surrogates
# (U+D800–U+DFFF) appear when a UTF-16 pair was split or decoded with surrogatepass.
_PRIVATE_OR_SURROGATE = re.compile("[\ue000-\uf8ff\U000f0000-\U0010ffff\ud800-\udfff]")
# C0 and C1 controls except tab and newline; also U+FEFF (BOM), U+00AD soft hyphen and
# zero-width characters that split words invisibly.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b\u200c\u200d\u2060\ufeff\ufffe\uffff]")
_SPACES = re.compile("[ \u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_TRAILING = re.compile(" +\n")
_LEADING = re.compile("\n +")
_NEWLINES = re.compile("\n{3,}")


def clean_text(text: str) -> str:
    """Normalise extracted text: NFC, no private-use or control characters, single spaces.

    Newlines and tabs are kept (paragraph and cell structure); carriage returns become newlines.
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x0b", "\n").replace("\x0c", "\n")
    text = _PRIVATE_OR_SURROGATE.sub("", text)
    text = _CONTROLS.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _SPACES.sub(" ", text)
    text = _TRAILING.sub("\n", text)
    text = _LEADING.sub("\n", text)
    text = _NEWLINES.sub("\n\n", text)
    return text.strip()
