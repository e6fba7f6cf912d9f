"""Test helpers that edit a closed store's files behind its back (as damage or a bad tool would)."""
import sqlite3
from pathlib import Path
from typing import Dict, Optional

from miro_edge.memory.store.backends import slots_index
from miro_edge.memory.store.backends import sqlite as sqlite_backend

DB_FILES = {"slots": slots_index.INDEX_NAME, "sqlite": sqlite_backend.DB_NAME}


def sql(path: Path, backend: str, statement: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(str(Path(path) / DB_FILES[backend]))
    conn.execute(statement, params)
    conn.commit()
    conn.close()


def query(path: Path, backend: str, statement: str, params: tuple = ()) -> list:
    conn = sqlite3.connect(str(Path(path) / DB_FILES[backend]))
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def _lmdb_env(path: Path):
    import lmdb

    return lmdb.open(str(path), max_dbs=4, subdir=True)


def get_info(path: Path, backend: str) -> Dict[str, str]:
    if backend == "lmdb":
        env = _lmdb_env(path)
        try:
            with env.begin() as txn:
                db = env.open_db(b"info", txn=txn, create=False)
                return {bytes(k).decode(): bytes(v).decode() for k, v in txn.cursor(db)}
        finally:
            env.close()
    return {k: v for k, v in query(path, backend, "SELECT key, value FROM info")}


def set_info(path: Path, backend: str, key: str, value: Optional[str]) -> None:
    """Set (or with ``None`` delete) one ``info`` entry."""
    if backend == "lmdb":
        env = _lmdb_env(path)
        try:
            with env.begin(write=True) as txn:
                db = env.open_db(b"info", txn=txn, create=False)
                if value is None:
                    txn.delete(key.encode(), db=db)
                else:
                    txn.put(key.encode(), value.encode(), db=db)
        finally:
            env.close()
        return
    if value is None:
        sql(path, backend, "DELETE FROM info WHERE key=?", (key,))
    else:
        sql(path, backend, "INSERT OR REPLACE INTO info(key, value) VALUES (?, ?)", (key, value))


def set_class_count(path: Path, backend: str, split: int, label: int, count: int) -> None:
    if backend == "lmdb":
        import struct
        env = _lmdb_env(path)
        try:
            with env.begin(write=True) as txn:
                db = env.open_db(b"classes", txn=txn, create=False)
                txn.put(struct.pack(">Bq", split, label), struct.pack("<Q", count), db=db)
        finally:
            env.close()
        return
    sql(path, backend, "UPDATE classes SET count=? WHERE split=? AND label=?", (count, split, label))


def unseal(path: Path, backend: str) -> None:
    """Make a store look written before the metadata checksum existed."""
    set_info(path, backend, "meta_crc", None)
    set_info(path, backend, "sealed", None)
    if backend == "slots":
        set_info(path, backend, "backend:slot_file_crc", None)
