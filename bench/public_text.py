"""A fixed public-domain text for the KV-cache benchmark: Alice's Adventures in Wonderland.

Project Gutenberg's eBook #11 ships inside the wordcloud 1.9.6 source distribution on PyPI
(examples/alice.txt). We fetch that one file by its sha256, keep the story between
Gutenberg's START and END markers, and cache it under ~/.cache/hybridgate/texts.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

URL = ("https://files.pythonhosted.org/packages/6f/04/a3d3c4b94a35586ddb97c6a3c508913159161cd558"
       "b34f315b382b924bf7/wordcloud-1.9.6.tar.gz")
SHA256 = "df17c468ff903bd0aba4f87c6540745d13a4931220dd4937cb363ad85a4771b9"
MEMBER = "wordcloud-1.9.6/examples/alice.txt"
CACHE = Path.home() / ".cache" / "hybridgate" / "texts" / "alice.txt"


def alice() -> str:
    if not CACHE.exists():
        with urllib.request.urlopen(URL, timeout=60) as response:
            blob = response.read()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != SHA256:
            raise RuntimeError(f"{URL}: sha256 {digest}, expected {SHA256}")
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            member = tar.extractfile(MEMBER)
            assert member is not None
            raw = member.read().decode("utf-8-sig")
        start = raw.index("CHAPTER I.")  # after the Gutenberg header and contents
        end = raw.index("End of Project Gutenberg")
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(raw[start:end].strip() + "\n", encoding="utf-8")
    return CACHE.read_text(encoding="utf-8")


if __name__ == "__main__":
    text = alice()
    print(f"{CACHE}: {len(text):,} characters")
