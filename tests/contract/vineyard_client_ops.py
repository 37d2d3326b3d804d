"""Vineyard client operations, each run in its own process (as a workload pod would), printing
one JSON line. Usage: python vineyard_client_ops.py OP ARGS...

  roundtrip SOCKET MIB                put a MIB array over IPC, get it back, compare
  rpc-roundtrip HOST PORT MIB         the same over RPC
  oversize SOCKET BYTES               put an array of BYTES, report the exception
  hold SOCKET MIB SEED                put a seeded array, print its id, wait for a line on stdin
  fetch SOCKET ID MIB SEED            get ID and compare with the seeded array
  bench SOCKET MIB REPEAT             IPC put/get throughput
  rpc-bench HOST PORT MIB REPEAT      RPC put/get throughput
  connect SOCKET                      a vineyard client handshake only
  raw-connect SOCKET                  a bare AF_UNIX connect (no client retries), errno if refused
"""

from __future__ import annotations

import errno
import json
import socket
import statistics
import sys
import time

import numpy as np
import vineyard

MIB = 1 << 20


def seeded(mib: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**63, size=int(mib * MIB) // 8, dtype=np.int64)


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def roundtrip(client: vineyard.Client, mib: float) -> None:
    array = seeded(mib)
    object_id = client.put(array)
    back = np.asarray(client.get(object_id))
    emit(
        object_id=str(object_id), equal=bool(np.array_equal(back, array)), nbytes=int(array.nbytes)
    )


def bench(client: vineyard.Client, mib: float, repeat: int) -> None:
    array = seeded(mib)
    puts, gets = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        object_id = client.put(array)
        t1 = time.perf_counter()
        # np.array copies: over IPC get() maps the shared memory (zero-copy), so this makes the
        # figure a read of every byte rather than a pointer hand-over.
        back = np.array(client.get(object_id))
        t2 = time.perf_counter()
        assert np.array_equal(back, array)
        del back
        client.delete(object_id)
        puts.append(t1 - t0)
        gets.append(t2 - t1)
    emit(
        mib=mib,
        repeat=repeat,
        put_mib_s=mib / statistics.median(puts),
        get_mib_s=mib / statistics.median(gets),
        put_s=puts,
        get_s=gets,
    )


def main(argv: list[str]) -> None:
    op, args = argv[0], argv[1:]
    if op == "connect":
        vineyard.connect(args[0]).close()
        emit(connected=True)
    elif op == "raw-connect":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(args[0])
                emit(connected=True)
            except OSError as e:
                emit(connected=False, errno=errno.errorcode.get(e.errno or 0, str(e.errno)))
    elif op == "roundtrip":
        roundtrip(vineyard.connect(args[0]), float(args[1]))
    elif op == "rpc-roundtrip":
        roundtrip(vineyard.connect(args[0], int(args[1])), float(args[2]))
    elif op == "oversize":
        client = vineyard.connect(args[0])
        array = np.ones(int(args[1]) // 8, dtype=np.int64)
        try:
            object_id = client.put(array)
        except Exception as e:  # the type is the point
            emit(raised=type(e).__name__, message=str(e)[:300])
        else:
            emit(raised=None, object_id=str(object_id))
    elif op == "hold":
        client = vineyard.connect(args[0])
        object_id = client.put(seeded(float(args[1]), int(args[2])))
        emit(object_id=str(object_id))
        sys.stdin.readline()
    elif op == "fetch":
        client = vineyard.connect(args[0])
        back = np.asarray(client.get(vineyard.ObjectID(args[1])))
        emit(equal=bool(np.array_equal(back, seeded(float(args[2]), int(args[3])))))
    elif op == "bench":
        bench(vineyard.connect(args[0]), float(args[1]), int(args[2]))
    elif op == "rpc-bench":
        bench(vineyard.connect(args[0], int(args[1])), float(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown op {op}")


if __name__ == "__main__":
    main(sys.argv[1:])
