"""Sample-store benchmark: random reads by class vs one .npy file per sample, durable ingest,
and read throughput and RAM at 1M records. It is also how the default backend was chosen.

Parts (one run; every baseline is measured in the same run, medians over repeats):
  reads   10k samples of 3 KB (uint8 32x32x3), 10 classes. The *swap* pattern does what the swap
          worker does: a minibatch of 16 EM slots with random labels, one ``draw({label: k})``
          (random same-class records of every label, read and checksummed). The *ids+read_many*
          pattern is what the swap worker did before ``draw``: ``sample_ids(label, k)`` per label,
          then one ``read_many``. The *single* pattern: ``sample_ids(label, 1)`` + ``read``.
          The baseline loads the very same records, in the same order, with ``np.load`` from one
          .npy file per sample (the reference layout) and pairs each array with its label from an
          in-RAM list; its draw is free (ids precomputed). Both are page-cache warm (just written;
          caches cannot be dropped without root). A "cold" line repeats the swap pattern after
          POSIX_FADV_DONTNEED on every file (the VM host may still cache).
  ingest  durable ``ingest_batch`` of 64 (one fsynced commit per batch) and per-sample ``ingest``,
          vs ``np.save`` per file with fsync of file and directory (and without fsync).
  scale   a store of 1,000,000 records of 3 KB (--quick: 200,000) built with bulk batches, then
          the swap-pattern read rate and the RSS it adds, measured in fresh processes for both the
          10k and the big store (same code, same number of reads, 3 interleaved runs, median).
          ``store_index_rss_mb`` is the private (anonymous) memory the open store adds; pages of the
          file mapped by LMDB are page cache (shared, reclaimable) and are printed separately.
"""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from _common import ROOT, median, parser, result

from miro_edge.memory.store import DEFAULT_BACKEND, SampleStore
from miro_edge.memory.store.backends.base import STORE_BACKENDS

SHAPE = (32, 32, 3)  # 3072 bytes as uint8
CLASSES = 10
SWAP_BATCH = 16

_PROBE = r"""
import collections, json, os, sys, time
import numpy as np
import psutil
sys.path.insert(0, sys.argv[1])
from miro_edge.memory.store import SampleStore
path, backend, n_batches, batch, seed = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])

def mem():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "RssAnon", "RssFile")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) / 1024.0
    return out

before = mem()
rng = np.random.default_rng(seed)
with SampleStore(path, backend=backend, create=False) as s:
    classes = sorted(s.class_counts())
    times = []
    for rep in range(5):
        requests = [collections.Counter(rng.choice(classes, size=batch).tolist()) for _ in range(n_batches)]
        t0 = time.perf_counter()
        got = 0
        for counts in requests:
            got += len(s.draw(counts, rng))
        times.append((time.perf_counter() - t0) / got * 1e6)
    after = mem()
print(json.dumps({"us_per_sample": sorted(times)[len(times) // 2], "before": before, "after": after}))
"""


def build_samples(n: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n,) + SHAPE, dtype=np.uint8), np.arange(n) % CLASSES


def write_files(root: Path, xs: np.ndarray, durable: bool, ids: List[int]) -> float:
    """One .npy per sample (the reference layout); returns seconds."""
    t0 = time.perf_counter()
    for rid, x in zip(ids, xs):
        path = root / f"{rid}.npy"
        if durable:
            with open(str(path), "wb") as f:
                np.save(f, x)
                f.flush()
                os.fsync(f.fileno())
            fd = os.open(str(root), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        else:
            np.save(str(path), x)
    return time.perf_counter() - t0


def swap_requests(rng: np.random.Generator, n_batches: int) -> List[np.ndarray]:
    return [rng.integers(0, CLASSES, size=SWAP_BATCH) for _ in range(n_batches)]


def store_swap(store: SampleStore, requests: List[np.ndarray], rng: np.random.Generator) -> Tuple[float, List[int]]:
    """The swap worker's access pattern (``SwapWorker._swap``); returns (seconds, ids read in order)."""
    wanted = [collections.Counter(labels.tolist()) for labels in requests]  # the worker groups its slots too
    order: List[int] = []
    t0 = time.perf_counter()
    for counts in wanted:
        for s in store.draw(counts, rng):
            order.append(s.record_id)
    return time.perf_counter() - t0, order


def store_ids_read_many(store: SampleStore, requests: List[np.ndarray],
                        rng: np.random.Generator) -> Tuple[float, List[int]]:
    """The swap worker's pattern before ``draw``: ``sample_ids`` per label, then one ``read_many``."""
    wanted = [collections.Counter(labels.tolist()) for labels in requests]
    order: List[int] = []
    t0 = time.perf_counter()
    for counts in wanted:
        ids: List[int] = []
        for lab, k in counts.items():
            ids += store.sample_ids(lab, k, rng)
        for s in store.read_many(ids):
            order.append(s.record_id)
    return time.perf_counter() - t0, order


def store_single(store: SampleStore, requests: List[np.ndarray], rng: np.random.Generator) -> Tuple[float, List[int]]:
    order: List[int] = []
    t0 = time.perf_counter()
    for labels in requests:
        for lab in labels:
            rid = store.sample_ids(int(lab), 1, rng)[0]
            order.append(store.read(rid).record_id)
    return time.perf_counter() - t0, order


def files_read(root: Path, order: List[int], labels: np.ndarray, warm: bool = True) -> float:
    """The baseline: the same records in the same order, each an array with its label.

    With ``warm``, every file of ``root`` is read once, untimed, first: the store's pages are warm
    from the run before, and this shared machine's page cache was seen to drop some of the 10k
    files between parts, which made the baseline look up to 2x slower than it is.
    """
    if warm:
        for path in root.iterdir():
            with open(str(path), "rb") as f:
                f.read()
    paths = [str(root / f"{rid}.npy") for rid in order]
    label_of = labels.tolist()
    out: List[Tuple[np.ndarray, int]] = []
    t0 = time.perf_counter()
    for rid, p in zip(order, paths):
        out.append((np.load(p), label_of[rid]))
    return time.perf_counter() - t0


def drop_cache(paths: List[Path]) -> None:
    for p in paths:
        if not p.exists():  # SQLite removes its -wal/-shm files at close
            continue
        fd = os.open(str(p), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def probe(path: Path, backend: str, n_batches: int) -> Dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(ROOT), str(path), backend, str(n_batches),
                          str(SWAP_BATCH), "7"], check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_backend(tmp: Path, backend: str, xs: np.ndarray, ys: np.ndarray, files: Path, reps: int,
                  n_batches: int, ingest_n: int) -> Dict[str, float]:
    out: Dict[str, float] = {}
    path = tmp / f"store-{backend}"
    with SampleStore(path, backend=backend) as store:
        t0 = time.perf_counter()
        for i in range(0, len(xs), 64):
            store.ingest_batch(xs[i:i + 64], ys[i:i + 64], task_id=0)
        out["ingest_batch64_per_s"] = len(xs) / (time.perf_counter() - t0)
    with SampleStore(tmp / f"single-{backend}", backend=backend) as single:
        t0 = time.perf_counter()
        for i in range(ingest_n):
            single.ingest(xs[i], int(ys[i]), task_id=0)
        out["ingest_single_per_s"] = ingest_n / (time.perf_counter() - t0)
    shutil.rmtree(str(tmp / f"single-{backend}"))
    with SampleStore(path, backend=backend) as store:
        swap_s, swap_f, old_s, old_f, single_s, single_f = [], [], [], [], [], []
        for rep in range(reps):
            rng = np.random.default_rng(100 + rep)
            reqs = swap_requests(rng, n_batches)
            t, order = store_swap(store, reqs, rng)
            swap_s.append(t / len(order))
            swap_f.append(files_read(files, order, ys) / len(order))
            t, order = store_ids_read_many(store, reqs, rng)
            old_s.append(t / len(order))
            old_f.append(files_read(files, order, ys) / len(order))
            t, order = store_single(store, reqs[: max(1, n_batches // 2)], rng)
            single_s.append(t / len(order))
            single_f.append(files_read(files, order, ys) / len(order))
        out["swap_store_us"] = median(swap_s) * 1e6
        out["swap_files_us"] = median(swap_f) * 1e6
        out["old_store_us"] = median(old_s) * 1e6
        out["old_files_us"] = median(old_f) * 1e6
        out["single_store_us"] = median(single_s) * 1e6
        out["single_files_us"] = median(single_f) * 1e6
        store_files = store.files()
    drop_cache(list(files.iterdir()) + store_files)  # closed first: mapped pages cannot be dropped
    with SampleStore(path, backend=backend) as store:
        rng = np.random.default_rng(999)
        t, order = store_swap(store, swap_requests(rng, n_batches), rng)
        drop_cache(list(files.iterdir()))
        out["cold_swap_store_us"] = t / len(order) * 1e6
        out["cold_swap_files_us"] = files_read(files, order, ys, warm=False) / len(order) * 1e6
    return out


def build_big(path: Path, backend: str, n: int) -> float:
    t0 = time.perf_counter()
    rng = np.random.default_rng(5)
    with SampleStore(path, backend=backend, sample_shape=SHAPE, dtype=np.uint8) as store:
        chunk = 8192
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            store.ingest_batch(rng.integers(0, 256, size=(m,) + SHAPE, dtype=np.uint8),
                               (np.arange(start, start + m) % CLASSES), task_id=start // 100000)
    return time.perf_counter() - t0


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--backends", default=",".join(STORE_BACKENDS.names()),
                   help="backends to compare (default: all registered)")
    p.add_argument("--big-records", type=int, default=None,
                   help="records in the scale test (default 1,000,000; --quick 200,000)")
    args = p.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    n_small = 10000
    reps = 3 if args.quick else 7
    n_batches = 150 if args.quick else 400
    ingest_n = 200 if args.quick else 1000
    big_n = args.big_records or (200000 if args.quick else 1000000)
    d = DEFAULT_BACKEND if DEFAULT_BACKEND in backends else backends[0]  # the RESULT lines are for it
    big_backends = [d] if args.quick else backends
    tmp = Path(tempfile.mkdtemp(prefix="miro-store-bench-"))
    try:
        xs, ys = build_samples(n_small, 1)
        files = tmp / "files"
        files.mkdir()
        plain_s = write_files(files, xs, durable=False, ids=list(range(n_small)))
        durable_dir = tmp / "files-durable"
        durable_dir.mkdir()
        durable_s = write_files(durable_dir, xs[:ingest_n], durable=True, ids=list(range(ingest_n)))
        shutil.rmtree(str(durable_dir))
        print(f"baseline .npy per file: write {n_small / plain_s:.0f}/s without fsync, {ingest_n / durable_s:.0f}/s with fsync (file + dir)")
        res: Dict[str, Dict[str, float]] = {}
        for backend in backends:
            r = bench_backend(tmp, backend, xs, ys, files, reps, n_batches, ingest_n)
            res[backend] = r
            print(f"[{backend}] 10k x 3 KB, page cache warm")
            print("  ingest (durable): batch of 64 {:.0f} samples/s; per-sample {:.0f} samples/s "
                  "(files+fsync {:.0f}/s)".format(r["ingest_batch64_per_s"], r["ingest_single_per_s"],
                                                  ingest_n / durable_s))
            print("  swap pattern (batch {}, draw): store {:.1f} us/sample, files {:.1f} us/sample -> {:.1f}x".format(
                SWAP_BATCH, r["swap_store_us"], r["swap_files_us"], r["swap_files_us"] / r["swap_store_us"]))
            print("  ids+read_many (batch {}):    store {:.1f} us/sample, files {:.1f} us/sample -> {:.1f}x".format(
                SWAP_BATCH, r["old_store_us"], r["old_files_us"], r["old_files_us"] / r["old_store_us"]))
            print("  single draw+read:        store {:.1f} us/sample, files {:.1f} us/sample -> {:.1f}x".format(
                r["single_store_us"], r["single_files_us"], r["single_files_us"] / r["single_store_us"]))
            print("  after FADV_DONTNEED (1 pass): store {:.1f} us/sample, files {:.1f} us/sample -> {:.1f}x".format(
                r["cold_swap_store_us"], r["cold_swap_files_us"], r["cold_swap_files_us"] / r["cold_swap_store_us"]))
        shutil.rmtree(str(files))
        scale: Dict[str, Dict[str, float]] = {}
        for backend in big_backends:
            big_path = tmp / f"big-{backend}"
            build_s = build_big(big_path, backend, big_n)
            size = sum(f.stat().st_size for f in big_path.iterdir())
            smalls, bigs = [], []
            for _ in range(3):  # interleaved fresh processes: the machine is shared and noisy
                smalls.append(probe(tmp / f"store-{backend}", backend, n_batches))
                bigs.append(probe(big_path, backend, n_batches))
            small_us = median([float(r["us_per_sample"]) for r in smalls])  # type: ignore[arg-type]
            big_us = median([float(r["us_per_sample"]) for r in bigs])  # type: ignore[arg-type]
            big = {"us_per_sample": big_us}
            small = {"us_per_sample": small_us}
            a, b = bigs[-1]["after"], bigs[-1]["before"]  # type: ignore[index]
            scale[backend] = {"ratio": small_us / big_us,
                              "rss": a["VmRSS"] - b["VmRSS"], "anon": a["RssAnon"] - b["RssAnon"],
                              "file": a["RssFile"] - b["RssFile"]}
            print(f"[{backend}] {big_n} records x 3 KB: built in {build_s:.0f} s ({big_n / build_s:.0f}/s bulk), {size / 1e9:.2f} GB on disk, page cache warm"
                  )
            print("  swap pattern in a fresh process: 10k {:.1f} us/sample, {} {:.1f} us/sample -> {:.2f}x".format(
                small["us_per_sample"], big_n, big["us_per_sample"], scale[backend]["ratio"]))
            print("  RSS added by opening the store and reading: {:.1f} MB total = {:.1f} MB private (anon) + "
                  "{:.1f} MB file-backed (mapped page cache: shared, reclaimable)"
                  .format(scale[backend]["rss"], scale[backend]["anon"], scale[backend]["file"]))
            shutil.rmtree(str(big_path))
        print(f"per backend: speedup vs files (swap pattern), {big_n} vs 10k read rate")
        for backend in backends:
            ratio = "{:.3f}".format(scale[backend]["ratio"]) if backend in scale else "- (not run)"
            print("  {:8s} {:6.2f}x  {}".format(backend, res[backend]["swap_files_us"] / res[backend]["swap_store_us"],
                                              ratio))
        print(f"default backend: {DEFAULT_BACKEND}; metrics below are for {d}")
        result("store_read_speedup_vs_files", res[d]["swap_files_us"] / res[d]["swap_store_us"], ".2f")
        result("ingest_samples_per_s", res[d]["ingest_batch64_per_s"], ".0f")
        if d in scale:
            result("store_read_1m_vs_10k", scale[d]["ratio"], ".3f")
            result("store_index_rss_mb", scale[d]["anon"], ".1f")  # private memory; mapped cache printed above
    finally:
        shutil.rmtree(str(tmp), ignore_errors=True)


if __name__ == "__main__":
    main()
