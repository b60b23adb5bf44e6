"""What a torch data.pkl may name and call, each call re-implemented as a plain record constructor.

The real functions are never imported: ``_rebuild_tensor_v2`` becomes a TensorRef record,
``OrderedDict`` a dict. Arity and argument types are checked, so an allowlisted name used
with other arguments is refused too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class PickleRefused(Exception):
    """A pickle asks for something beyond tensor rebuilds (the caller names model and file)."""


class PickleMalformed(Exception):
    """Opcodes that do not form a torch state dict (the caller names model and file)."""


@dataclass(frozen=True)
class Global:
    """An allowlisted name; ``module.name``."""

    module: str
    name: str

    @property
    def qualname(self) -> str:
        """``module.name`` as a message shows it."""
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class StorageRef:
    """A persistent id ('storage', type, key, location, numel): the zip entry ``data/<key>``."""

    key: str
    storage_type: str
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """What ``_rebuild_tensor_v2`` would build: a view of a storage."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


class OrderedDictValue(dict[Any, Any]):
    """A dict made by the allowlisted OrderedDict call; only it may receive BUILD (state_dict's _metadata)."""


# torch storage types -> safetensors dtype names (None: allowed, but not decoded).
STORAGE_DTYPES: dict[str, str | None] = {
    "FloatStorage": "F32",
    "DoubleStorage": "F64",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "Float8_e4m3fnStorage": "F8_E4M3",
    "Float8_e5m2Storage": "F8_E5M2",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
    "ComplexFloatStorage": None,
    "ComplexDoubleStorage": None,
}
# torch dtypes may appear as plain values (e.g. in metadata); they are names, never called.
TORCH_DTYPES = frozenset(
    [
        "float32",
        "float64",
        "float16",
        "bfloat16",
        "int64",
        "int32",
        "int16",
        "int8",
        "uint8",
        "bool",
        "float",
        "half",
        "double",
        "long",
        "int",
    ]
)
REBUILD_TENSOR = ("torch._utils", "_rebuild_tensor_v2")
REBUILD_PARAMETER = ("torch._utils", "_rebuild_parameter")
REBUILD_PARAMETER_STATE = ("torch._utils", "_rebuild_parameter_with_state")
ORDERED_DICT = ("collections", "OrderedDict")
TORCH_SIZE = ("torch", "Size")
# Python 3 pickles bytes at protocol 2 as _codecs.encode(str, 'latin1'): a pure conversion.
CODECS_ENCODE = ("_codecs", "encode")
CALLABLE = frozenset(
    {REBUILD_TENSOR, REBUILD_PARAMETER, REBUILD_PARAMETER_STATE, ORDERED_DICT, TORCH_SIZE, CODECS_ENCODE}
)
# Opcodes that build arbitrary objects through the class protocol; never needed by a state dict.
OBJECT_OPCODES = frozenset({"INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})
EXTENSION_OPCODES = frozenset({"EXT1", "EXT2", "EXT4"})


def allowed_global(module: str, name: str) -> Global:
    """The allowlisted global ``module.name``.

    Raises:
        PickleRefused: anything not on the allowlist.
    """
    key = (module, name)
    ok = key in CALLABLE or (module == "torch" and (name in STORAGE_DTYPES or name in TORCH_DTYPES))
    if not ok:
        raise PickleRefused(f"pickle calls {module}.{name}; refused, never executed")
    return Global(module, name)


class Malformed(ValueError):
    """Raised inside the machine; walk() turns it into PickleMalformed."""


def _rebuild_tensor(func: Global, args: tuple[Any, ...]) -> TensorRef:
    """_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])."""
    _arity(func, args, (6, 7))
    storage, offset, size, stride = args[:4]
    if not isinstance(storage, StorageRef):
        raise Malformed(f"{func.qualname} called on a {kind_of(storage)}, not a storage")
    if (
        not is_int(offset)
        or offset < 0
        or not _int_tuple(size)
        or not _int_tuple(stride)
        or len(size) != len(stride)
    ):
        raise Malformed(f"{func.qualname} called with bad offset, size or stride")
    return TensorRef(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(func: Global, args: tuple[Any, ...]) -> TensorRef:
    """_rebuild_parameter(data, requires_grad, backward_hooks[, state]): the tensor itself."""
    _arity(func, args, (4,) if func.name.endswith("_with_state") else (3,))
    if not isinstance(args[0], TensorRef):
        raise Malformed(f"{func.qualname} called on a {kind_of(args[0])}, not a tensor")
    return args[0]


def _ordered_dict(func: Global, args: tuple[Any, ...]) -> OrderedDictValue:
    """OrderedDict() or OrderedDict(pairs)."""
    _arity(func, args, (0, 1))
    out = OrderedDictValue()
    for pair in args[0] if args else ():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], (str, int)):
            raise Malformed(f"{func.qualname} called with items that are not (key, value) pairs")
        out[pair[0]] = pair[1]
    return out


def _torch_size(func: Global, args: tuple[Any, ...]) -> tuple[int, ...]:
    """torch.Size(tuple of ints) is a tuple."""
    _arity(func, args, (1,))
    if not _int_tuple(args[0]):
        raise Malformed(f"{func.qualname} called with something other than integers")
    return tuple(args[0])


def _codecs_encode(func: Global, args: tuple[Any, ...]) -> bytes:
    """_codecs.encode(str, 'latin1'): how protocol 2 spells a bytes value."""
    _arity(func, args, (2,))
    if not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
        raise PickleRefused(
            f"pickle calls {func.qualname} with other than (str, 'latin1'); refused, never executed"
        )
    return args[0].encode("latin-1")


CALLS: dict[tuple[str, str], Callable[[Global, tuple[Any, ...]], Any]] = {
    REBUILD_TENSOR: _rebuild_tensor,
    REBUILD_PARAMETER: _rebuild_parameter,
    REBUILD_PARAMETER_STATE: _rebuild_parameter,
    ORDERED_DICT: _ordered_dict,
    TORCH_SIZE: _torch_size,
    CODECS_ENCODE: _codecs_encode,
}


def _arity(func: Global, args: tuple[Any, ...], allowed: tuple[int, ...]) -> None:
    if len(args) not in allowed:
        expected = " or ".join(str(n) for n in allowed)
        raise PickleRefused(
            f"pickle calls {func.qualname} with {len(args)} arguments, expected {expected}; refused, never executed"
        )


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_tuple(v: object) -> bool:
    return isinstance(v, tuple) and all(is_int(x) and x >= 0 for x in v)


def kind_of(v: object) -> str:
    if isinstance(v, Global):
        return v.qualname
    return type(v).__name__


def short_repr(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."
