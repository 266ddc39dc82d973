"""Large tables are verified while they are parsed; a bad digest still means no value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.errors import IntegrityError
from conveyor.store.artifacts import PARALLEL_VERIFY_BYTES, ArtifactStore
from conveyor.store.blobs import BlobStore
from conveyor.store.materializers import MaterializeContext


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(BlobStore(str(tmp_path / "a"), tmp_path / "c"), MaterializeContext())


def big_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = PARALLEL_VERIFY_BYTES // 16 + 50_000
    return pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})


def test_large_table_round_trips(store: ArtifactStore) -> None:
    df = big_frame()
    info = store.save(df)
    assert info.size > PARALLEL_VERIFY_BYTES
    pd.testing.assert_frame_equal(store.load(info), df)


@pytest.mark.parametrize("where", [0.5, 0.999])
def test_flipped_byte_in_large_table_is_never_served(store: ArtifactStore, where: float) -> None:
    info = store.save(big_frame())
    path = Path(store.blobs.key(info.digest))
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its digest"):
        store.load(info)
    assert not path.exists()
    assert list((Path(store.blobs.root) / "quarantine").iterdir())
