"""ferry: the Python SDK of the ferry data plane.

An application talks to the ferryd on its node over a unix socket. Objects live in ferryd's
arena, which the client maps, so getting a local object moves no bytes: :meth:`Client.get`
returns a :class:`Object` that is a zero-copy, read-only view of the arena (buffer protocol
and DLPack), pinned while any view of it is alive::

    import numpy as np
    import ferry

    with ferry.connect("/run/ferry/ferryd.sock") as client:
        client.put("weights/layer0", np.arange(1024, dtype=np.float32))   # anywhere
        obj = client.get("weights/layer0", timeout=30)                     # on any node
        w = np.asarray(obj)            # float32 view of the arena, no copy, read-only

        handles = client.get_many_async(["a", "b", "c"], timeout=30)
        for h in ferry.as_completed(handles):
            use(np.asarray(h.wait()))

See docs/python.md for lifetimes, errors and async gets.
"""

import dataclasses
import sys
import time
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

from . import errors
from .errors import *  # noqa: F401,F403 -- the exception classes are part of the API

try:
    from . import _ferry
except ImportError as e:  # pragma: no cover - depends on the build
    raise ImportError(
        "ferry's compiled module ferry._ferry is missing or does not load "
        f"({e}); build it with `cmake --build build --target ferry_python` and put build/python "
        "on PYTHONPATH") from e

__all__ = [
    "connect",
    "as_completed",
    "Client",
    "Object",
    "WritableBuffer",
    "GetHandle",
    "ObjectInfo",
    "NodeInfo",
    "NodeStatus",
    "BroadcastTarget",
    "BroadcastResult",
    "BatchBroadcastResult",
    "BatchResult",
    "BatchEntryError",
    "ReduceResult",
    "Group",
    "GroupMember",
    "GroupResult",
    "GROUP_COLLECTIVES",
    "DTYPES",
    "REDUCE_OPS",
] + errors.__all__

#: A pinned, read-only, zero-copy view of an object (returned by :meth:`Client.get`).
#:
#: ``memoryview(obj)`` / ``numpy.asarray(obj)`` give a typed view of the arena without a copy
#: (1-D, ``obj.count`` elements of ``obj.dtype``; bf16 shows as uint16 there, as numpy has no
#: bfloat16). ``numpy.from_dlpack(obj)`` goes through DLPack (kDLCPU). Every such view holds a
#: reference to the Object, so the pin lives until the last one is gone. ``obj.release()``
#: drops the pin at once (BufferError while views are alive); after it every access raises
#: :class:`FailedPreconditionError`.
Object = _ferry.Object
#: An object being written (returned by :meth:`Client.create`): a writable buffer of the
#: arena. ``seal()`` publishes it, ``abort()`` discards it; as a context manager it seals on
#: success and aborts on an exception. Views of it must be gone before ``seal()``.
WritableBuffer = _ferry.WritableBuffer
#: A get running in the background (:meth:`Client.get_async`): ``wait(timeout=None)``,
#: ``ready()``, ``cancel()``.
GetHandle = _ferry.GetHandle

#: ferry's element types.
DTYPES = ("bytes", "f32", "f64", "f16", "bf16", "i32", "i64", "u8")
#: The element-wise operations of :meth:`Client.reduce` / :meth:`Client.allreduce`.
REDUCE_OPS = ("sum", "prod", "min", "max")

# numpy dtype names that map onto ferry's (bfloat16 is ml_dtypes' name for it).
_NUMPY_TO_FERRY = {
    "float32": "f32",
    "float64": "f64",
    "float16": "f16",
    "bfloat16": "bf16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
}


def _dtype_name(buffer, dtype) -> str:
    """The ferry dtype for a put: `dtype` if given, else inferred from a numpy array."""
    if dtype is None:
        np_dtype = getattr(buffer, "dtype", None)
        if np_dtype is None:
            return "bytes"
        # Only native byte order maps; a byte-swapped array is stored as plain bytes.
        native = "<" if sys.byteorder == "little" else ">"
        if getattr(np_dtype, "byteorder", "=") not in ("=", "|", native):
            return "bytes"
        return _NUMPY_TO_FERRY.get(getattr(np_dtype, "name", ""), "bytes")
    if isinstance(dtype, str):
        name = dtype.lower()
        if name in DTYPES:
            return name
        if name in _NUMPY_TO_FERRY:
            return _NUMPY_TO_FERRY[name]
    else:
        name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None)
        if name in _NUMPY_TO_FERRY:
            return _NUMPY_TO_FERRY[name]
    raise InvalidArgumentError(  # noqa: F405
        "INVALID_ARGUMENT",
        f"unknown dtype {dtype!r}; ferry's dtypes are {', '.join(DTYPES)} "
        f"(or the numpy names {', '.join(_NUMPY_TO_FERRY)})")


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """One object of a listing (:meth:`Client.list`)."""
    namespace: str
    key: str
    size: int
    dtype: str
    count: int
    checksum: bool
    complete_copies: int
    partial_copies: int


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    """A node as the coordinator sees it."""
    id: int
    name: str
    alive: bool
    arena_bytes: int
    arena_used: int
    objects: int
    bandwidth_bps: float
    latency_s: float
    labels: Dict[str, str]


@dataclasses.dataclass(frozen=True)
class NodeStatus:
    """This node's status and the cluster's (:meth:`Client.status`)."""
    node: NodeInfo
    coordinator_connected: bool
    pinned: int
    evictions: int
    bytes_received: int
    bytes_sent: int
    retries: int
    failures: int
    cluster: List[NodeInfo]

    @property
    def alive_nodes(self) -> List[NodeInfo]:
        return [n for n in self.cluster if n.alive]


@dataclasses.dataclass(frozen=True)
class BroadcastTarget:
    node: str
    ok: bool
    error: str


@dataclasses.dataclass(frozen=True)
class BroadcastResult:
    """What :meth:`Client.broadcast` did, per target node."""
    targets: List[BroadcastTarget]
    seconds: float

    @property
    def ok(self) -> bool:
        """True if every target holds a complete copy."""
        return all(t.ok for t in self.targets)


@dataclasses.dataclass(frozen=True)
class BatchEntryError:
    """One entry of a batch broadcast that failed, on one node (`node` empty: everywhere)."""
    index: int
    key: str
    node: str
    code: str
    error: str


@dataclasses.dataclass(frozen=True)
class BatchBroadcastResult:
    """What :meth:`Client.broadcast_batch` did, per target node and per failed entry."""
    targets: List[BroadcastTarget]
    errors: List[BatchEntryError]
    seconds: float
    bytes: int

    @property
    def ok(self) -> bool:
        """True if every target holds every entry."""
        return not self.errors and all(t.ok for t in self.targets)


@dataclasses.dataclass(frozen=True)
class ReduceResult:
    """What :meth:`Client.reduce` / :meth:`Client.allreduce` built: the result object (its
    key, namespace, size in bytes, dtype and element count), the node that built it, the
    input keys whose data is in it (in input order), and for allreduce one copy outcome per
    participating node (`copies`; empty for reduce)."""
    key: str
    namespace: str
    size: int
    dtype: str
    count: int
    root_node: str
    used: List[str]
    copies: List[BroadcastTarget]
    seconds: float

    @property
    def ok(self) -> bool:
        """True if every participant of an allreduce holds the result (always, for reduce)."""
        return all(t.ok for t in self.copies)


@dataclasses.dataclass(frozen=True)
class GroupMember:
    """A member of a static group: its rank, node name and id, and host."""
    rank: int
    node: str
    node_id: int
    host: str


@dataclasses.dataclass(frozen=True)
class Group:
    """A static group (:meth:`Client.create_group`): members in rank order; `revoked` (with
    `revoked_why`) once a member died, for good."""
    name: str
    id: int
    members: List[GroupMember]
    revoked: bool
    revoked_why: str
    collectives: int
    lease_id: int = 0   # the placement lease it was made from (0: none)


@dataclasses.dataclass(frozen=True)
class GroupResult:
    """What :meth:`Client.group_collective` built: the result object, the nodes that hold it
    (rank order), and, if it fell back to a dynamic tree (`dynamic`), the ranks whose inputs are
    in it (`used`)."""
    key: str
    namespace: str
    size: int
    dtype: str
    nodes: List[str]
    seconds: float
    dynamic: bool
    used: List[int]


#: The collectives of :meth:`Client.group_collective`.
GROUP_COLLECTIVES = ("allreduce", "reduce-scatter", "allgather", "broadcast", "reduce")


def _group(d) -> Group:
    return Group(name=d["name"], id=d["id"], members=[GroupMember(**m) for m in d["members"]],
                 revoked=d["revoked"], revoked_why=d["revoked_why"], collectives=d["collectives"],
                 lease_id=d.get("lease_id", 0))


@dataclasses.dataclass
class BatchResult:
    """What a batch call did: `objects` (get_batch: key -> Object) and `errors` (key ->
    FerryError of each entry that failed)."""
    objects: Dict[str, "Object"]
    errors: Dict[str, errors.FerryError]

    @property
    def ok(self) -> bool:
        return not self.errors

    def check(self) -> "BatchResult":
        """Raises the first entry's error (its message names the object) if any failed."""
        for err in self.errors.values():
            raise err
        return self


def _batch_errors(keys, outcomes) -> Dict[str, "errors.FerryError"]:
    return {k: errors._from_status(*o) for k, o in zip(keys, outcomes) if isinstance(o, tuple)}


class Client:
    """A connection to the ferryd on this node (see :func:`connect`).

    Methods may be called from several threads at once; each releases the GIL while it
    blocks. ``close()`` (or leaving a ``with`` block) cancels the client's running async gets;
    Objects already obtained stay valid.
    """

    def __init__(self, native, namespace: str):
        self._native = native
        self._namespace = namespace

    @property
    def namespace(self) -> str:
        """The default namespace of calls that take only a key."""
        return self._namespace

    def _ns(self, namespace: Optional[str]) -> str:
        return self._namespace if namespace is None else namespace

    def close(self) -> None:
        """Disconnects; running async gets end with CancelledError."""
        self._native.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- objects ---------------------------------------------------------------------------

    def put(self, key: str, buffer, dtype=None, namespace: Optional[str] = None,
            checksum: bool = False) -> None:
        """Stores a copy of `buffer` (any C-contiguous buffer: bytes, bytearray, memoryview,
        numpy array, ...) as object `key`.

        `dtype` defaults to the numpy array's dtype where it maps onto ferry's (float32/64/16,
        bfloat16, int32/64, uint8), else "bytes". `checksum` stores an XXH3 hash that every
        receiving node verifies. Raises InvalidArgumentError (a ValueError) for a
        non-contiguous buffer, storing nothing; AlreadyExistsError if the key is taken.
        """
        self._native.put(self._ns(namespace), key, buffer, _dtype_name(buffer, dtype), checksum)

    def get(self, key: str, timeout: Optional[float] = 30.0,
            namespace: Optional[str] = None) -> Object:
        """Returns a pinned zero-copy :class:`Object`, pulling it from another node if needed.

        Waits up to `timeout` seconds (None: forever) for the object to be created anywhere:
        DeadlineExceededError after that; UnavailableError / DataLossError if every copy died.
        """
        return self._native.get(self._ns(namespace), key, timeout)

    def get_async(self, key: str, timeout: Optional[float] = 30.0,
                  namespace: Optional[str] = None) -> GetHandle:
        """Starts a get and returns at once; ``handle.wait()`` returns what :meth:`get` would.

        Argument errors are raised by ``wait()`` too. No thread is created per get.
        """
        return self._native.get_async(self._ns(namespace), key, timeout)

    def get_many_async(self, keys: Iterable[str], timeout: Optional[float] = 30.0,
                       namespace: Optional[str] = None) -> List[GetHandle]:
        """One :meth:`get_async` per key, in order; consume them with :func:`as_completed`."""
        ns = self._ns(namespace)
        return [self._native.get_async(ns, key, timeout) for key in keys]

    def create(self, key: str, size: int, dtype=None, namespace: Optional[str] = None,
               checksum: bool = False) -> WritableBuffer:
        """Allocates `size` bytes in the arena for zero-copy writing; ``seal()`` publishes.

        ``with client.create("k", n, dtype="f32") as w: numpy.asarray(w)[:] = values``
        """
        name = "bytes" if dtype is None else _dtype_name(None, dtype)
        return self._native.create(self._ns(namespace), key, size, name, checksum)

    def delete(self, key: str, namespace: Optional[str] = None) -> None:
        """Deletes the object on every node. NotFoundError if it does not exist."""
        self._native.delete(self._ns(namespace), key)

    def list(self, prefix: str = "", namespace: Optional[str] = None,
             limit: int = 0) -> List[ObjectInfo]:
        """Objects in the cluster directory whose key starts with `prefix` (limit 0: all)."""
        return [ObjectInfo(**d) for d in self._native.list(self._ns(namespace), prefix, limit)]

    def broadcast(self, key: str, nodes: Optional[Sequence[str]] = None,
                  timeout: Optional[float] = 60.0,
                  namespace: Optional[str] = None) -> BroadcastResult:
        """Makes every listed node (names or decimal ids; None: all live nodes) hold a
        complete copy; returns when all have one or failed, or after `timeout`."""
        r = self._native.broadcast(self._ns(namespace), key, list(nodes or []), timeout)
        return BroadcastResult([BroadcastTarget(**t) for t in r["targets"]], r["seconds"])

    def broadcast_batch(self, keys: Sequence[str], nodes: Optional[Sequence[str]] = None,
                        timeout: Optional[float] = 60.0,
                        namespace: Optional[str] = None) -> BatchBroadcastResult:
        """Broadcasts a batch of objects (a model version: distinct keys, one namespace) to
        every listed node (None: all live nodes) as one operation: one plan, small objects
        packed together. An entry that fails (no such object, deleted meanwhile) fails alone
        and is listed in `errors`; a malformed batch raises InvalidArgument."""
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be a sequence of keys, not one key")
        r = self._native.broadcast_batch(self._ns(namespace), list(keys), list(nodes or []), timeout)
        return BatchBroadcastResult([BroadcastTarget(**t) for t in r["targets"]],
                                    [BatchEntryError(**e) for e in r["errors"]],
                                    r["seconds"], r["bytes"])

    # ---- batches (a model version in one call) ----------------------------------------------

    def put_batch(self, items, dtype=None, namespace: Optional[str] = None,
                  checksum: bool = False) -> "BatchResult":
        """Stores every (key, buffer) of `items` (a mapping or a sequence of pairs) in one call.

        The batch is refused as a whole, storing nothing, for a bad or repeated key, a buffer
        that is not C-contiguous (InvalidArgumentError) or more bytes than the arena
        (ResourceExhaustedError). Otherwise each entry succeeds or fails alone (a key already
        taken): the result's `errors` maps the failed keys to their exceptions.
        """
        pairs = list(items.items()) if hasattr(items, "items") else list(items)
        keys = [k for k, _ in pairs]
        buffers = [b for _, b in pairs]
        dtypes = [_dtype_name(b, dtype) for b in buffers]
        outcomes = self._native.put_batch(self._ns(namespace), keys, buffers, dtypes, checksum)
        return BatchResult({}, _batch_errors(keys, outcomes))

    def get_batch(self, keys: Sequence[str], timeout: Optional[float] = 30.0,
                  namespace: Optional[str] = None) -> "BatchResult":
        """Zero-copy :class:`Object` views of every key, in one call: the objects not on this
        node are pulled as one batch (small ones packed, large ones pipelined). Each waits up to
        `timeout` to be created. The result's `objects` holds the views, `errors` the keys that
        failed (NotFoundError, DeadlineExceededError, ...)."""
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be a sequence of keys, not one key")
        keys = list(keys)
        outcomes = self._native.get_batch(self._ns(namespace), keys, timeout)
        objects = {k: o for k, o in zip(keys, outcomes) if not isinstance(o, tuple)}
        return BatchResult(objects, _batch_errors(keys, outcomes))

    def delete_batch(self, keys: Sequence[str], namespace: Optional[str] = None) -> "BatchResult":
        """Deletes every key on every node in one call; `errors` holds the keys that failed
        (NotFoundError for one that does not exist)."""
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be a sequence of keys, not one key")
        keys = list(keys)
        return BatchResult({}, _batch_errors(keys, self._native.delete_batch(self._ns(namespace), keys)))

    def status(self) -> NodeStatus:
        """This node's and the cluster's status."""
        d = self._native.status()
        return NodeStatus(
            node=NodeInfo(**d["node"]),
            coordinator_connected=d["coordinator_connected"],
            pinned=d["pinned"],
            evictions=d["evictions"],
            bytes_received=d["bytes_received"],
            bytes_sent=d["bytes_sent"],
            retries=d["retries"],
            failures=d["failures"],
            cluster=[NodeInfo(**n) for n in d["cluster"]],
        )

    # ---- collectives ---------------------------------------------------------------------

    def reduce(self, inputs: Sequence[str], result: str, op: str = "sum", dtype=None,
               num_objects: int = 0, timeout: Optional[float] = 60.0,
               namespace: Optional[str] = None, root: Optional[str] = None) -> ReduceResult:
        """Combines the objects `inputs` (keys, one per node, all of one size and dtype)
        element-wise with `op` (sum, prod, min, max) into a new object `result`, built on a
        dynamic tree across the nodes; blocks until it is sealed (on `root_node`) or `timeout`.

        Inputs need not exist yet: each joins the tree when it is created. `num_objects` > 0
        reduces only the first that many ready (`used` says which). `dtype` defaults to the
        first input's (it must then exist already). Raises InvalidArgumentError (sizes or dtypes
        that differ, bad op or num_objects), AlreadyExistsError (`result` exists),
        DeadlineExceededError naming the inputs never created, DataLossError naming lost ones.

        `root` (a node name) builds the result there, e.g. a parameter server or a node a
        placement lease chose; it must hold one of the inputs, which is then always used.
        NotFoundError for an unknown node; InvalidArgumentError once every input is ready and
        none is on it. Should it die first, the planner picks the root.
        """
        return self._reduce(inputs, result, op, dtype, num_objects, timeout, namespace, False, root)

    def allreduce(self, inputs: Sequence[str], result: str, op: str = "sum", dtype=None,
                  num_objects: int = 0, timeout: Optional[float] = 60.0,
                  namespace: Optional[str] = None, root: Optional[str] = None) -> ReduceResult:
        """:meth:`reduce`, then every node whose input took part receives a copy of `result`
        (``copies``; ``ok`` is False if one lacks it), so each can get it locally."""
        return self._reduce(inputs, result, op, dtype, num_objects, timeout, namespace, True, root)

    def _reduce(self, inputs, result, op, dtype, num_objects, timeout, namespace, all_nodes,
                root=None):
        what = "allreduce" if all_nodes else "reduce"
        if isinstance(inputs, (str, bytes)):
            raise TypeError(f"{what}: inputs must be a sequence of keys, not one key")
        inputs = list(inputs)
        if not isinstance(result, str):
            raise TypeError(f"{what}: result must be a key (str), not {type(result).__name__}")
        if not isinstance(op, str) or op.lower() not in REDUCE_OPS:
            raise InvalidArgumentError(  # noqa: F405
                "INVALID_ARGUMENT",
                f"{what}: unknown op {op!r}; ferry's ops are {', '.join(REDUCE_OPS)}")
        if isinstance(num_objects, bool) or not isinstance(num_objects, int) or num_objects < 0:
            raise InvalidArgumentError(  # noqa: F405
                "INVALID_ARGUMENT",
                f"{what}: num_objects must be an int >= 0 (0: every input), not {num_objects!r}")
        if root is not None and (not isinstance(root, str) or not root):
            raise InvalidArgumentError(  # noqa: F405
                "INVALID_ARGUMENT", f"{what}: root must be a node name (str), not {root!r}")
        ns = self._ns(namespace)
        if dtype is None:
            name = self._input_dtype(what, inputs, ns)
        else:
            name = _dtype_name(None, dtype)
        r = self._native.reduce(ns, inputs, result, op.lower(), name, num_objects, timeout,
                                all_nodes, root or "")
        return ReduceResult(
            key=r["key"], namespace=r["namespace"], size=r["size"], dtype=r["dtype"],
            count=r["count"], root_node=r["root_node"], used=[inputs[i] for i in r["used"]],
            copies=[BroadcastTarget(**t) for t in r["copies"]], seconds=r["seconds"])

    # ---- static groups -------------------------------------------------------------------

    def create_group(self, name: str, nodes: Sequence[str]) -> Group:
        """Fixes `nodes` (names of live nodes, at least two, distinct) as static group `name`,
        with ranks (members on one host adjacent, then the hosts of one rack: ``members`` is
        rank order, which may differ from `nodes`). Raises InvalidArgumentError (bad name,
        duplicates), NotFoundError (unknown node), FailedPreconditionError (a dead one),
        AlreadyExistsError (the name is in use)."""
        if isinstance(nodes, str):
            raise TypeError("create_group: nodes must be a sequence of node names, not one name")
        return _group(self._native.create_group(name, list(nodes)))

    def create_group_from_lease(self, name: str, lease_id: int, holder: str) -> Group:
        """The static group of a gang grant: its members are the distinct nodes of placement
        lease `lease_id`'s bundles (held by `holder`) in bundle order, grouped by host; the
        group is revoked when the lease ends. Raises NotFoundError (the lease is not held),
        PermissionDeniedError (another holder's), InvalidArgumentError (fewer than two nodes),
        and the errors of :meth:`create_group`."""
        if isinstance(lease_id, bool) or not isinstance(lease_id, int) or lease_id <= 0:
            raise InvalidArgumentError(  # noqa: F405
                "INVALID_ARGUMENT", f"create_group_from_lease: lease_id must be an int > 0, not {lease_id!r}")
        if not isinstance(holder, str) or not holder:
            raise InvalidArgumentError(  # noqa: F405
                "INVALID_ARGUMENT", f"create_group_from_lease: holder must be a non-empty str, not {holder!r}")
        return _group(self._native.create_group_from_lease(name, lease_id, holder))

    def delete_group(self, name: str) -> Group:
        """Forgets group `name` (revoked or not) and returns it as it was."""
        return _group(self._native.delete_group(name))

    def groups(self) -> List[Group]:
        """Every static group the coordinator holds."""
        return [_group(d) for d in self._native.list_groups()]

    def group_collective(self, group: str, kind: str, inputs: Sequence[str], result: str,
                         op: str = "sum", dtype=None, root: int = 0,
                         timeout: Optional[float] = 60.0, fallback: bool = False,
                         namespace: Optional[str] = None) -> GroupResult:
        """Runs `kind` (allreduce, reduce-scatter, allgather, broadcast, reduce) on static group
        `group` as a pipelined ring: `inputs[r]` (keys in rank order, each already put on
        member r; broadcast: the root's alone) into a new object `result` on the ranks that get
        one. `dtype` defaults to the first input's. With `fallback`, an allreduce on a group
        that lost a member runs on a dynamic tree over the survivors' inputs
        (``GroupResult.dynamic``, ``used``). Raises as the C++ SDK's GroupCollective:
        UnavailableError naming a member that died (the group is then revoked),
        FailedPreconditionError for a revoked group, InvalidArgumentError for mismatched
        inputs."""
        if isinstance(inputs, (str, bytes)):
            raise TypeError("group_collective: inputs must be a sequence of keys, not one key")
        inputs = list(inputs)
        if not isinstance(kind, str) or kind.lower() not in GROUP_COLLECTIVES:
            raise InvalidArgumentError(  # noqa: F405
                "INVALID_ARGUMENT",
                f"group_collective: unknown kind {kind!r}; ferry's are {', '.join(GROUP_COLLECTIVES)}")
        if not isinstance(op, str) or op.lower() not in REDUCE_OPS:
            raise InvalidArgumentError(  # noqa: F405
                "INVALID_ARGUMENT",
                f"group_collective: unknown op {op!r}; ferry's ops are {', '.join(REDUCE_OPS)}")
        if isinstance(root, bool) or not isinstance(root, int) or root < 0:
            raise InvalidArgumentError(  # noqa: F405
                "INVALID_ARGUMENT", f"group_collective: root must be a rank (int >= 0), not {root!r}")
        ns = self._ns(namespace)
        name = (self._input_dtype("group_collective", inputs, ns) if dtype is None
                else _dtype_name(None, dtype))
        r = self._native.group_collective(ns, group, kind.lower(), inputs, result, op.lower(), name,
                                          root, timeout, bool(fallback))
        return GroupResult(key=r["key"], namespace=r["namespace"], size=r["size"],
                           dtype=r["dtype"], nodes=list(r["nodes"]), seconds=r["seconds"],
                           dynamic=r["dynamic"], used=list(r["used"]))

    def _input_dtype(self, what, inputs, ns) -> str:
        """The dtype of the first input, read from the cluster directory."""
        if not inputs:
            raise InvalidArgumentError(  # noqa: F405
                "INVALID_ARGUMENT", f"{what}: no inputs")
        first = inputs[0]
        for info in self._native.list(ns, first, 0):
            if info["key"] == first:
                return info["dtype"]
        raise InvalidArgumentError(  # noqa: F405
            "INVALID_ARGUMENT",
            f"{what}: dtype not given and the first input {ns}/{first} does not exist yet to "
            f"read it from; pass dtype= (one of {', '.join(DTYPES[1:])})")


def connect(socket_path: str, namespace: str = "default", rpc_timeout: float = 30.0) -> Client:
    """Connects to the ferryd serving `socket_path` and maps its arena.

    `namespace` is the default for calls that take only a key; `rpc_timeout` (seconds) bounds
    each control RPC (not a get's own wait). UnavailableError if no ferryd answers there.
    """
    return Client(_ferry.connect(socket_path, namespace, rpc_timeout), namespace)


def as_completed(handles: Iterable[GetHandle],
                 timeout: Optional[float] = None) -> Iterator[GetHandle]:
    """Yields each handle as its get finishes (successfully or not), in completion order.

    ``handle.wait()`` on a yielded handle returns at once. Raises DeadlineExceededError if
    `timeout` seconds (None: no limit) pass before all have finished. Waits with the GIL
    released; Ctrl-C interrupts it.
    """
    pending = list(handles)
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        yield pending.pop(_ferry.wait_any(pending, left))
