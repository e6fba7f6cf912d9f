"""sha256 of files, streamed (artifacts can be larger than RAM on small boards)."""
import hashlib
from pathlib import Path
from typing import Union


def sha256_file(path: Union[str, Path], chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        while True:
            block = handle.read(chunk_bytes)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()
