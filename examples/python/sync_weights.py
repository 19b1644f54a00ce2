#!/usr/bin/env python3
"""Syncs a small fake model (a dict of numpy arrays) from one node to every node with ferry.

    PYTHONPATH=build/python python3 examples/python/sync_weights.py SOCKET_A [SOCKET_B ...]

SOCKET_A is the ferryd socket of the node that has the weights; the others are sockets of
other nodes, used to check the copies. The script puts the model on node A in one call, broadcasts the
whole model to all live nodes as one batch (one plan; small tensors travel packed), then gets
each tensor on each other node -- a local read now, zero-copy -- and
verifies the bytes with numpy. Keys get a unique prefix, deleted at the end (--keep keeps
them). Exit status 0 when every tensor verified on every node.
"""
import argparse
import sys
import time
import uuid

import numpy as np

import ferry


def fake_model(seed):
    """A few tensors of different shapes and dtypes, as a training step would leave them."""
    rng = np.random.default_rng(seed)
    return {
        "embed.weight": rng.standard_normal((512, 64), dtype=np.float32),
        "block0.attn.qkv": rng.standard_normal((64, 192), dtype=np.float32),
        "block0.mlp.up": rng.standard_normal((64, 256)).astype(np.float16),
        "block0.mlp.down": rng.standard_normal((256, 64)).astype(np.float16),
        "head.bias": rng.standard_normal(1000),                   # float64
        "step": np.array([1234], dtype=np.int64),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sockets", nargs="+", help="ferryd sockets; the first one has the weights")
    ap.add_argument("--prefix", default=f"example/sync-weights/{uuid.uuid4().hex[:8]}")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--keep", action="store_true", help="do not delete the keys at the end")
    args = ap.parse_args()

    model = fake_model(seed=7)
    source = ferry.connect(args.sockets[0])
    others = [ferry.connect(s) for s in args.sockets[1:]]
    keys = {name: f"{args.prefix}/{name}" for name in model}

    t0 = time.monotonic()
    # The whole model in one call (dtype from each array); a taken key would fail alone.
    source.put_batch({keys[name]: tensor for name, tensor in model.items()}, checksum=True).check()
    result = source.broadcast_batch(list(keys.values()), timeout=args.timeout)
    if not result.ok:
        print(f"batch broadcast failed: {result.targets} {result.errors}", file=sys.stderr)
        return 1
    nbytes = sum(t.nbytes for t in model.values())
    print(f"put and broadcast {len(model)} tensors ({nbytes} bytes) to "
          f"{len(source.status().alive_nodes)} nodes in {time.monotonic() - t0:.3f} s")

    failures = 0
    for i, client in enumerate(others, start=1):
        # Consume the tensors as they land (they are local already after the broadcast).
        handles = client.get_many_async(keys.values(), timeout=args.timeout)
        by_key = {v: k for k, v in keys.items()}
        for h in ferry.as_completed(handles, timeout=args.timeout):
            name = by_key[h.key]
            got = np.asarray(h.wait()).reshape(model[name].shape)   # zero-copy typed view
            if got.dtype != model[name].dtype or not np.array_equal(got, model[name]):
                print(f"node {i}: {name} differs", file=sys.stderr)
                failures += 1
    if failures:
        return 1
    print(f"verified {len(model)} tensors on {len(others)} other node(s)")

    if not args.keep:
        source.delete_batch(list(keys.values())).check()
    for c in [source, *others]:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
