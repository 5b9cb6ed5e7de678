"""On-disk cache of chips (``.npz`` shards) keyed by sources, grid and chip size, then by sample id and window."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np

from sptgnn.atomic import atomic_file


def file_key(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class ChipCache:
    """On-disk chip cache: ``DIR/<group key>/meta.json`` and ``shard-*.npz`` files of ``keys, values, mask``.

    Shards are written to a temporary name and renamed, so an interrupted run never leaves a half-written shard.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def group(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> tuple[dict | None, dict[str, tuple[Path, int]]]:
        folder = self.group(key)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            return None, {}
        meta = json.loads(meta_path.read_text())
        index: dict[str, tuple[Path, int]] = {}
        for shard in sorted(folder.glob("shard-*.npz")):
            with np.load(shard) as z:
                for i, k in enumerate(z["keys"].tolist()):
                    index[k] = (shard, i)
        return meta, index

    def gather(self, index: dict[str, tuple[Path, int]], keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        by_shard: dict[Path, list[tuple[int, int]]] = {}
        for pos, k in enumerate(keys):
            shard, i = index[k]
            by_shard.setdefault(shard, []).append((pos, i))
        values = mask = None
        for shard, pairs in by_shard.items():
            with np.load(shard) as z:
                v, m = z["values"], z["mask"]
                if values is None:
                    values = np.empty((len(keys),) + v.shape[1:], v.dtype)
                    mask = np.empty((len(keys),) + m.shape[1:], bool)
                pos, idx = np.array(pairs).T
                values[pos], mask[pos] = v[idx], m[idx]
        return values, mask

    def write(self, key: str, meta: dict, keys: list[str], values: np.ndarray, mask: np.ndarray) -> None:
        folder = self.group(key)
        folder.mkdir(parents=True, exist_ok=True)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            with atomic_file(meta_path) as tmp:
                tmp.write_text(json.dumps(meta))
        with atomic_file(folder / f"shard-{uuid.uuid4().hex}.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(keys), values=values, mask=mask)


__all__ = ["ChipCache"]
