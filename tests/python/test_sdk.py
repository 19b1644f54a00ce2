"""The Python SDK (import ferry) against real daemons (conftest.py's cluster)."""
import gc
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import ferry

LONG = 600.0   # a get's own timeout that no test waits out
WAIT = 60.0    # how long a test waits for something it caused


def pinned(client):
    gc.collect()
    return client.status().pinned


# ---- put / get ------------------------------------------------------------------------------

def test_put_get_round_trip_on_one_node(clients, key):
    a = clients[0]
    a.put(key, b"hello ferry")
    obj = a.get(key)
    assert obj.tobytes() == b"hello ferry"
    assert bytes(memoryview(obj)) == b"hello ferry"
    assert (obj.key, obj.namespace, obj.size, obj.dtype) == (key, "default", 11, "bytes")
    assert not obj.pulled


def test_put_get_across_nodes(clients, key):
    data = np.arange(300_000, dtype=np.float32)
    clients[0].put(key, data)
    obj = clients[1].get(key, timeout=WAIT)
    assert obj.pulled
    assert obj.dtype == "f32" and obj.count == data.size and obj.shape == (data.size,)
    got = np.asarray(obj)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, data)


def test_bytearray_memoryview_and_namespace(clients, key):
    clients[0].put(key, bytearray(b"abc"), namespace="other")
    clients[0].put(key, memoryview(b"xyz"))
    assert clients[1].get(key, namespace="other").tobytes() == b"abc"
    assert clients[1].get(key).tobytes() == b"xyz"


# ---- zero copy ------------------------------------------------------------------------------

def test_numpy_view_is_zero_copy_and_read_only(clients, key):
    a = clients[0]
    # Written through a WritableBuffer, read through get: the get's view is those very bytes.
    with a.create(key, 4096, dtype="i32") as w:
        arr = np.asarray(w)
        assert arr.flags.writeable and arr.dtype == np.int32 and arr.shape == (1024,)
        arr[:] = np.arange(1024, dtype=np.int32)
        written_at = arr.ctypes.data
        del arr
    obj = a.get(key)
    view = np.asarray(obj)
    assert view.ctypes.data == written_at          # same arena address: no copy
    np.testing.assert_array_equal(view, np.arange(1024, dtype=np.int32))
    # The array's base chain ends at the ferry.Object.
    base = view.base
    assert isinstance(base, memoryview) and base.obj is obj
    assert np.shares_memory(view, np.asarray(obj))
    assert memoryview(obj).readonly
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0] = 7
    with pytest.raises(ValueError):
        view.setflags(write=True)


def test_dlpack(clients, key):
    data = np.linspace(0, 1, 1000, dtype=np.float64)
    clients[0].put(key, data)
    obj = clients[1].get(key, timeout=WAIT)
    assert obj.__dlpack_device__() == (1, 0)       # kDLCPU
    t = np.from_dlpack(obj)
    assert t.dtype == np.float64 and t.shape == (1000,)
    np.testing.assert_array_equal(t, data)
    assert np.shares_memory(t, np.asarray(obj))
    assert not t.flags.writeable                   # numpy's from_dlpack arrays are read-only
    assert obj.exports >= 1
    del t
    gc.collect()
    assert obj.exports == 0
    # An unconsumed capsule releases its export when it goes.
    cap = obj.__dlpack__()
    assert obj.exports == 1
    del cap
    assert obj.exports == 0
    with pytest.raises(ferry.InvalidArgumentError):
        obj.__dlpack__(stream=1)


@pytest.mark.parametrize("np_dtype,ferry_dtype", [
    (np.float32, "f32"), (np.float64, "f64"), (np.float16, "f16"), (np.int32, "i32"),
    (np.int64, "i64"), (np.uint8, "u8"), (np.int16, "bytes"), (np.bool_, "bytes"),
])
def test_dtype_mapping(clients, key, np_dtype, ferry_dtype):
    data = (np.arange(64) % 3).astype(np_dtype)
    clients[0].put(key, data)
    obj = clients[1].get(key, timeout=WAIT)
    assert obj.dtype == ferry_dtype
    got = np.asarray(obj)
    if ferry_dtype == "bytes":
        assert got.dtype == np.uint8 and got.nbytes == data.nbytes
        np.testing.assert_array_equal(got.view(np_dtype), data)
    else:
        assert got.dtype == np.dtype(np_dtype)
        np.testing.assert_array_equal(got, data)
        np.testing.assert_array_equal(np.from_dlpack(obj), data)


def test_explicit_dtypes(clients, key):
    a = clients[0]
    a.put(key + "-f32", b"\0" * 8, dtype="f32")
    assert a.get(key + "-f32").dtype == "f32"
    a.put(key + "-np", np.zeros(4, np.uint8), dtype=np.float32)
    assert np.asarray(a.get(key + "-np")).dtype == np.float32
    bf = np.array([0x3F80, 0x4000], dtype=np.uint16)     # 1.0, 2.0 in bfloat16
    a.put(key + "-bf16", bf, dtype="bf16")
    obj = a.get(key + "-bf16")
    assert obj.dtype == "bf16"
    np.testing.assert_array_equal(np.asarray(obj), bf)   # uint16 through the buffer protocol
    with pytest.raises(ferry.InvalidArgumentError):
        a.put(key + "-bad", b"abc", dtype="complex128")
    with pytest.raises(ferry.InvalidArgumentError):
        a.put(key + "-odd", b"abc", dtype="f32")          # 3 bytes are not whole f32s


# ---- pin lifetime ---------------------------------------------------------------------------

def test_pin_lives_as_long_as_a_numpy_view(clients, key):
    b = clients[1]
    data = np.arange(10_000, dtype=np.int64)
    clients[0].put(key, data)
    before = pinned(b)
    obj = b.get(key, timeout=WAIT)
    assert pinned(b) == before + 1
    view = np.asarray(obj)
    del obj
    assert pinned(b) == before + 1                 # the array still holds the Object
    np.testing.assert_array_equal(view, data)
    del view
    assert pinned(b) == before


def test_release_drops_the_pin_and_later_access_raises(clients, key):
    b = clients[1]
    clients[0].put(key, b"x" * 1000)
    before = pinned(b)
    obj = b.get(key, timeout=WAIT)
    m = memoryview(obj)
    with pytest.raises(BufferError):
        obj.release()                               # a view is alive
    assert pinned(b) == before + 1
    m.release()
    obj.release()
    assert obj.released
    assert pinned(b) == before
    obj.release()                                   # idempotent
    with pytest.raises(ferry.FailedPreconditionError):
        memoryview(obj)
    with pytest.raises(ferry.FailedPreconditionError):
        obj.tobytes()
    with pytest.raises(ferry.FailedPreconditionError):
        obj.__dlpack__()


# ---- async ----------------------------------------------------------------------------------

def test_async_gets_complete_out_of_order_with_as_completed(clients, key):
    keys = [f"{key}-{i}" for i in range(4)]
    handles = clients[1].get_many_async(keys, timeout=LONG)
    assert not any(h.ready() for h in handles)     # nothing exists yet
    with pytest.raises(ferry.DeadlineExceededError):
        handles[0].wait(timeout=0)
    done = ferry.as_completed(handles, timeout=WAIT * 4)
    for i in (2, 0, 3, 1):
        data = np.full(1000 + i, i, dtype=np.int32)
        clients[0].put(keys[i], data)
        h = next(done)
        assert h.key == keys[i]                    # only the one just put can have finished
        np.testing.assert_array_equal(np.asarray(h.wait(0)), data)
        assert h.wait(0) is h.wait(0)              # later waits return the same Object
    with pytest.raises(StopIteration):
        next(done)


def test_cancel_ends_a_pending_get_with_cancelled(clients, key):
    h = clients[1].get_async(key + "-never", timeout=LONG)
    h.cancel()
    with pytest.raises(ferry.CancelledError) as e:
        h.wait(timeout=WAIT)                       # far below the get's own timeout
    assert e.value.code == "CANCELLED"
    with pytest.raises(ferry.CancelledError):
        h.wait(0)


def test_closing_the_client_cancels_its_gets(cluster, key):
    c = cluster.connect(1)
    hs = c.get_many_async([key + "-a", key + "-b"], timeout=LONG)
    c.close()
    for h in hs:
        with pytest.raises(ferry.CancelledError):
            h.wait(timeout=WAIT)
    with pytest.raises(ferry.FailedPreconditionError):
        c.status()
    # Dropping pending handles (and their client) is clean too.
    c = cluster.connect(1)
    hs = c.get_many_async([key + "-c", key + "-d"], timeout=LONG)
    del hs, c
    gc.collect()


def test_blocking_get_releases_the_gil(clients, key):
    result = {}

    def getter():
        result["obj"] = clients[1].get(key, timeout=LONG)

    t = threading.Thread(target=getter)
    t.start()
    # This thread can only put (and so end the get) if the get does not hold the GIL.
    clients[0].put(key, b"through another thread")
    t.join(timeout=WAIT)
    assert not t.is_alive()
    assert result["obj"].tobytes() == b"through another thread"


# ---- errors ---------------------------------------------------------------------------------

def test_errors_are_exceptions_with_codes(clients, key):
    a = clients[0]
    with pytest.raises(ferry.NotFoundError) as e:
        a.delete(key + "-missing")
    assert e.value.code == "NOT_FOUND" and key in e.value.message
    assert isinstance(e.value, ferry.FerryError) and isinstance(e.value, LookupError)

    with pytest.raises(ferry.DeadlineExceededError) as e:
        a.get(key + "-late", timeout=0.3)
    assert e.value.code == "DEADLINE_EXCEEDED"

    with pytest.raises(ferry.InvalidArgumentError) as e:
        a.put("", b"x")
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(ferry.InvalidArgumentError):
        a.get(key, namespace="bad namespace!")
    with pytest.raises(ferry.InvalidArgumentError):
        clients[1].get_async("", timeout=LONG).wait(WAIT)

    a.put(key, b"once")
    with pytest.raises(ferry.AlreadyExistsError):
        a.put(key, b"twice")
    with pytest.raises(TypeError):
        a.put(key + "-notbuffer", 12345)


def test_non_contiguous_array_is_refused_and_nothing_is_stored(clients, key):
    strided = np.arange(100, dtype=np.float32)[::2]
    with pytest.raises(ferry.InvalidArgumentError) as e:
        clients[0].put(key, strided)
    assert isinstance(e.value, ValueError)
    assert "not C-contiguous" in e.value.message
    assert clients[0].list(prefix=key) == []
    clients[0].put(key, np.ascontiguousarray(strided))     # the fix the message suggests
    np.testing.assert_array_equal(np.asarray(clients[1].get(key, timeout=WAIT)), strided)


# ---- the rest of the API --------------------------------------------------------------------

def test_create_seal_and_abort(clients, key):
    a = clients[0]
    w = a.create(key, 16, dtype="f32")
    arr = np.asarray(w)
    arr[:] = [1, 2, 3, 4]
    with pytest.raises(BufferError):
        w.seal()                                   # `arr` would outlive the write window
    del arr
    w.seal()
    assert w.closed
    with pytest.raises(ferry.FailedPreconditionError):
        w.seal()
    with pytest.raises(ferry.FailedPreconditionError):
        memoryview(w)
    np.testing.assert_array_equal(np.asarray(clients[2].get(key, timeout=WAIT)), [1, 2, 3, 4])

    with pytest.raises(RuntimeError):
        with a.create(key + "-aborted", 8) as w2:
            memoryview(w2)[:] = b"12345678"
            raise RuntimeError("the writer failed")
    assert w2.closed
    with pytest.raises(ferry.NotFoundError):
        a.get(key + "-aborted", timeout=0)


def test_delete_list_broadcast_status(clients, key):
    a, b, c = clients
    for i in range(3):
        a.put(f"{key}/{i}", np.zeros(1000 * (i + 1), np.uint8))
    listed = a.list(prefix=key + "/")
    assert sorted(o.key for o in listed) == [f"{key}/{i}" for i in range(3)]
    assert all(isinstance(o, ferry.ObjectInfo) for o in listed)
    assert sorted(o.size for o in listed) == [1000, 2000, 3000]

    r = a.broadcast(f"{key}/2", timeout=WAIT)
    assert r.ok, r
    assert {t.node for t in r.targets} >= {"n1", "n2"}
    assert not b.get(f"{key}/2").pulled            # already there
    assert not c.get(f"{key}/2").pulled
    r = a.broadcast(f"{key}/1", nodes=["n2"], timeout=WAIT)
    assert r.ok and [t.node for t in r.targets] == ["n2"]

    st = a.status()
    assert isinstance(st, ferry.NodeStatus)
    assert st.node.name == "n0" and st.coordinator_connected
    assert sorted(n.name for n in st.alive_nodes) == ["n0", "n1", "n2"]

    a.delete(f"{key}/0")
    assert sorted(o.key for o in a.list(prefix=key + "/")) == [f"{key}/1", f"{key}/2"]
    with pytest.raises(ferry.NotFoundError):
        b.get(f"{key}/0", timeout=0)


def test_broadcast_batch_delivers_every_tensor_and_reports_bad_entries(clients, key):
    a, b, c = clients
    model = {f"{key}/t{i}": np.arange(i * 37 + 1, dtype=np.float32) for i in range(50)}
    model[f"{key}/big"] = np.random.default_rng(1).standard_normal(300_000).astype(np.float32)
    for k, v in model.items():
        a.put(k, v)
    r = a.broadcast_batch(list(model), timeout=WAIT)
    assert isinstance(r, ferry.BatchBroadcastResult)
    assert r.ok, r
    assert r.bytes == sum(v.nbytes for v in model.values())
    for client in (b, c):
        for k, v in model.items():
            got = client.get(k, timeout=0)
            assert not got.pulled
            assert np.array_equal(np.asarray(got).view(np.float32), v)

    # An unknown entry fails alone, named by index and key.
    r = a.broadcast_batch([f"{key}/t0", f"{key}/nope"], nodes=["n1"], timeout=WAIT)
    assert not r.ok
    assert [(e.index, e.key, e.code) for e in r.errors] == [(1, f"{key}/nope", "NOT_FOUND")]

    with pytest.raises(ferry.InvalidArgumentError, match="both name"):
        a.broadcast_batch([f"{key}/t0", f"{key}/t0"])
    with pytest.raises(ferry.InvalidArgumentError, match="names no objects"):
        a.broadcast_batch([])
    with pytest.raises(TypeError):
        a.broadcast_batch(f"{key}/t0")


def test_put_get_delete_batch_round_trip_across_nodes(clients, key):
    a, b, _ = clients
    model = {f"{key}/w{i}": np.arange(i * 53 + 1, dtype=np.float32) for i in range(200)}
    model[f"{key}/emb"] = np.random.default_rng(2).standard_normal(400_000).astype(np.float32)
    model[f"{key}/empty"] = np.zeros(0, dtype=np.uint8)
    r = a.put_batch(model)
    assert isinstance(r, ferry.BatchResult)
    assert r.ok, r.errors
    got = b.get_batch(list(model), timeout=WAIT).check()
    assert set(got.objects) == set(model)
    for k, v in model.items():
        obj = got.objects[k]
        assert obj.pulled
        assert obj.dtype == ("u8" if v.dtype == np.uint8 else "f32")
        assert np.array_equal(np.asarray(obj).view(v.dtype), v)
    again = b.get_batch(list(model), timeout=WAIT).check()
    assert not any(o.pulled for o in again.objects.values())
    del got, again
    assert a.delete_batch(list(model)).ok
    with pytest.raises(ferry.DeadlineExceededError):
        b.get(f"{key}/w0", timeout=0.2)


def test_batch_entries_fail_alone_and_bad_batches_store_nothing(clients, key):
    a, b, c = clients
    b.put(f"{key}/taken", b"first")
    r = a.put_batch([(f"{key}/ok", b"x" * 10), (f"{key}/taken", b"second")])
    assert not r.ok
    assert list(r.errors) == [f"{key}/taken"]
    assert isinstance(r.errors[f"{key}/taken"], ferry.AlreadyExistsError)
    with pytest.raises(ferry.AlreadyExistsError, match="taken"):
        r.check()
    got = c.get_batch([f"{key}/ok", f"{key}/taken", f"{key}/never"], timeout=0.3)
    assert bytes(got.objects[f"{key}/taken"]) == b"first"
    assert bytes(got.objects[f"{key}/ok"]) == b"x" * 10
    assert isinstance(got.errors[f"{key}/never"], ferry.DeadlineExceededError)
    del got
    d = a.delete_batch([f"{key}/ok", f"{key}/taken", f"{key}/never"])
    assert list(d.errors) == [f"{key}/never"]
    assert isinstance(d.errors[f"{key}/never"], ferry.NotFoundError)

    strided = np.arange(100, dtype=np.float32)[::2]
    with pytest.raises(ferry.InvalidArgumentError, match="not C-contiguous"):
        a.put_batch({f"{key}/s0": b"fine", f"{key}/s1": strided})
    with pytest.raises(ferry.InvalidArgumentError, match="both name"):
        a.put_batch([(f"{key}/d", b"1"), (f"{key}/d", b"2")])
    with pytest.raises(ferry.ResourceExhaustedError, match="arena"):
        a.put_batch({f"{key}/h{i}": np.zeros(24 << 20, dtype=np.uint8) for i in range(3)})
    for k in (f"{key}/s0", f"{key}/d", f"{key}/h0"):
        with pytest.raises(ferry.DeadlineExceededError):
            c.get(k, timeout=0.1)
    with pytest.raises(TypeError):
        a.get_batch(f"{key}/ok")


# ---- reduce / allreduce ----------------------------------------------------------------------

def _put_inputs(clients, key, n=200_000, seed=3):
    """One f32 input per node, in [1, 2) so that any summation order agrees to a few ulps."""
    rng = np.random.default_rng(seed)
    arrays = [(1 + rng.random(n)).astype(np.float32) for _ in clients]
    keys = [f"{key}/in{i}" for i in range(len(clients))]
    for c, k, a in zip(clients, keys, arrays):
        c.put(k, a)
    return keys, arrays


def test_reduce_sums_f32_inputs_from_every_node(clients, key):
    keys, arrays = _put_inputs(clients, key)
    r = clients[0].reduce(keys, f"{key}/sum", timeout=WAIT)   # dtype read from the first input
    assert isinstance(r, ferry.ReduceResult)
    assert (r.key, r.namespace, r.dtype) == (f"{key}/sum", "default", "f32")
    assert r.size == arrays[0].nbytes and r.count == arrays[0].size
    assert sorted(r.used) == sorted(keys)
    assert r.root_node in ("n0", "n1", "n2") and r.copies == [] and r.ok and r.seconds > 0
    got = np.asarray(clients[1].get(r.key, timeout=WAIT))
    np.testing.assert_allclose(got, arrays[0] + arrays[1] + arrays[2], rtol=1e-6)

    # max is exact; the op name is case-insensitive.
    m = clients[2].reduce(keys, f"{key}/max", op="MAX", dtype="f32", timeout=WAIT)
    np.testing.assert_array_equal(np.asarray(clients[2].get(m.key, timeout=WAIT)),
                                  np.maximum.reduce(arrays))


def test_reduce_of_a_subset_uses_the_first_ready(clients, key):
    keys, arrays = _put_inputs(clients, key, n=50_000, seed=4)
    r = clients[1].reduce(keys, f"{key}/two", dtype=np.float32, num_objects=2, timeout=WAIT)
    assert len(r.used) == 2 and len(set(r.used)) == 2 and set(r.used) <= set(keys)
    want = sum(arrays[keys.index(k)] for k in r.used)
    np.testing.assert_allclose(np.asarray(clients[0].get(r.key, timeout=WAIT)), want, rtol=1e-6)


def test_allreduce_leaves_the_result_on_every_node(clients, key):
    keys, arrays = _put_inputs(clients, key, n=100_000, seed=5)
    r = clients[2].allreduce(keys, f"{key}/all", op="sum", timeout=WAIT)
    assert r.ok, r.copies
    assert sorted(t.node for t in r.copies) == ["n0", "n1", "n2"]
    want = arrays[0] + arrays[1] + arrays[2]
    for c in clients:
        obj = c.get(r.key, timeout=0)
        assert not obj.pulled
        np.testing.assert_allclose(np.asarray(obj), want, rtol=1e-6)


def test_reduce_builds_the_result_on_the_chosen_root(clients, key):
    keys, arrays = _put_inputs(clients, key, n=70_000, seed=6)
    for root in ("n0", "n2"):
        r = clients[1].reduce(keys, f"{key}/at-{root}", root=root, timeout=WAIT)
        assert r.root_node == root
        obj = clients[int(root[1])].get(r.key, timeout=0)
        assert not obj.pulled   # built there, not copied there
        np.testing.assert_allclose(np.asarray(obj), arrays[0] + arrays[1] + arrays[2], rtol=1e-6)
    with pytest.raises(ferry.NotFoundError, match="nobody"):
        clients[0].reduce(keys, f"{key}/nowhere", root="nobody", timeout=WAIT)
    with pytest.raises(ferry.InvalidArgumentError, match="root"):
        clients[0].reduce(keys, f"{key}/nowhere", root=3, timeout=WAIT)


def test_reduce_refuses_bad_inputs(clients, key):
    a, b, c = clients
    a.put(f"{key}/x0", np.ones(1000, dtype=np.float32))
    b.put(f"{key}/x1", np.ones(999, dtype=np.float32))
    with pytest.raises(ferry.InvalidArgumentError, match="999|3996 bytes"):
        a.reduce([f"{key}/x0", f"{key}/x1"], f"{key}/bad", timeout=WAIT)

    c.put(f"{key}/x2", np.ones(1000, dtype=np.float32))
    a.put(f"{key}/taken", b"already here")
    with pytest.raises(ferry.AlreadyExistsError, match="taken"):
        a.reduce([f"{key}/x0", f"{key}/x2"], f"{key}/taken", timeout=WAIT)

    with pytest.raises(ferry.InvalidArgumentError, match="sum, prod, min, max"):
        a.reduce([f"{key}/x0", f"{key}/x2"], f"{key}/r", op="avg")
    with pytest.raises(ferry.InvalidArgumentError, match="sum, prod, min, max"):
        a._native.reduce("default", [f"{key}/x0"], f"{key}/r", "mean", "f32", 0, 1.0, False)
    with pytest.raises(TypeError, match="not one key"):
        a.allreduce(f"{key}/x0", f"{key}/r")
    with pytest.raises(ferry.InvalidArgumentError, match="does not exist yet"):
        a.reduce([f"{key}/later", f"{key}/x0"], f"{key}/r")
    with pytest.raises(ferry.InvalidArgumentError, match="num_objects"):
        a.reduce([f"{key}/x0", f"{key}/x2"], f"{key}/r", num_objects=-1)
    with pytest.raises(ferry.InvalidArgumentError, match="num_objects"):
        a.reduce([f"{key}/x0", f"{key}/x2"], f"{key}/r", dtype="f32", num_objects=3, timeout=WAIT)
    with pytest.raises(ferry.InvalidArgumentError):
        a.reduce([f"{key}/x0", f"{key}/x2"], f"{key}/r", dtype="bytes", timeout=WAIT)


# ---- the example ----------------------------------------------------------------------------

def test_sync_weights_example_runs(cluster):
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "examples", "python", "sync_weights.py")
    out = subprocess.run([sys.executable, example, *cluster.sockets], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verified" in out.stdout


def test_group_allreduce_and_allgather_on_a_static_group(clients, key):
    a, b, c = clients
    name = f"pyg-{key[-8:]}"
    g = a.create_group(name, ["n0", "n1", "n2"])
    assert isinstance(g, ferry.Group) and [m.node for m in g.members] == ["n0", "n1", "n2"]
    assert [m.rank for m in g.members] == [0, 1, 2] and not g.revoked
    keys, arrays = _put_inputs(clients, key, n=60_000, seed=9)
    r = b.group_collective(name, "allreduce", keys, f"{key}/gsum", timeout=WAIT)
    assert isinstance(r, ferry.GroupResult) and r.nodes == ["n0", "n1", "n2"] and not r.dynamic
    want = arrays[0] + arrays[1] + arrays[2]
    for cl in clients:
        obj = cl.get(r.key, timeout=0)
        assert not obj.pulled   # each member holds its own copy
        np.testing.assert_allclose(np.asarray(obj), want, rtol=1e-6)
    ag = c.group_collective(name, "allgather", keys, f"{key}/gall", timeout=WAIT)
    assert ag.size == 3 * arrays[0].nbytes
    np.testing.assert_array_equal(np.asarray(a.get(ag.key, timeout=WAIT)), np.concatenate(arrays))
    assert any(x.name == name and x.collectives == 2 for x in a.groups())

    with pytest.raises(ferry.InvalidArgumentError, match="twice"):
        a.create_group(f"{name}-dup", ["n0", "n0"])
    with pytest.raises(ferry.AlreadyExistsError):
        a.create_group(name, ["n0", "n1"])
    with pytest.raises(ferry.InvalidArgumentError, match="2 inputs for 3"):
        a.group_collective(name, "allreduce", keys[:2], f"{key}/short", timeout=WAIT)
    with pytest.raises(ferry.InvalidArgumentError, match="unknown kind"):
        a.group_collective(name, "allsum", keys, f"{key}/x", timeout=WAIT)
    with pytest.raises(ferry.NotFoundError, match="no group named"):
        a.group_collective("absent-group", "allreduce", keys, f"{key}/x", timeout=WAIT)
    gone = a.delete_group(name)
    assert gone.collectives == 2
    with pytest.raises(ferry.NotFoundError):
        a.delete_group(name)
