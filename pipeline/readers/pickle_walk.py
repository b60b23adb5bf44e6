"""Walk the opcodes of torch's ``data.pkl`` on a stack machine of our own; nothing is ever executed.

``pickletools.genops`` only parses opcodes and their arguments. This module interprets them and
builds plain data only: dicts, lists, tuples, numbers, strings, and records for storages and
tensors. GLOBAL/STACK_GLOBAL may name only pickle_allowlist's names, and a call (REDUCE) is
honoured only for the tensor-rebuild functions and OrderedDict, each re-implemented there as a
record constructor with its arity and argument types checked. Anything else is UnsafeContent, raised
before the next opcode is read. The threat model is in PICKLE_SAFETY.md.
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from typing import Any

from hubscan.pipeline.readers.pickle_allowlist import (
    CALLABLE,
    CALLS,
    EXTENSION_OPCODES,
    OBJECT_OPCODES,
    STORAGE_DTYPES,
    Global,
    Malformed,
    OrderedDictValue,
    PickleMalformed,
    PickleRefused,
    StorageRef,
    allowed_global,
    is_int,
    kind_of,
    short_repr,
)

# Caps that keep a hostile pickle from exhausting memory; real data.pkl files are far below
# them (a 7B shard's is ~30 kB with ~3,000 memo entries).
MAX_PICKLE_BYTES = 16 * 1024 * 1024
MAX_MEMO_ENTRIES = 1_000_000
MAX_STACK_ITEMS = 1_000_000
# Nesting of containers: a state dict is 1-3 levels deep; deeper is a bomb for any later walk.
MAX_DEPTH = 100


def walk(pkl: bytes) -> Any:
    """Interpret the opcodes of ``pkl`` and return the object it describes, built from plain data.

    Raises:
        PickleRefused: a global, call or opcode beyond tensor rebuilds, or a pickle bomb.
        PickleMalformed: opcodes that do not parse or do not fit together.
    """
    if len(pkl) > MAX_PICKLE_BYTES:
        raise PickleRefused(
            f"pickle of {len(pkl)} bytes exceeds {MAX_PICKLE_BYTES}; refused as a pickle bomb"
        )
    machine = _Machine()
    try:
        for op, arg, pos in pickletools.genops(pkl):
            at = pos or 0
            if op.name == "STOP":
                return machine.result(at)
            machine.step(op.name, arg, at)
    except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError) as exc:
        if isinstance(exc, Malformed):
            raise PickleMalformed(str(exc)) from None
        raise PickleMalformed(f"pickle does not parse: {exc}") from None
    raise PickleMalformed("pickle has no STOP opcode")


_MARK = object()
_SIMPLE = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": ()}


class _Machine:
    """The pickle virtual machine's data part: stack, mark stack and memo, and no imports."""

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def step(self, name: str, arg: Any, pos: int) -> None:
        """Apply one opcode."""
        stack = self.stack
        if len(stack) > MAX_STACK_ITEMS:
            raise PickleRefused(f"pickle stack exceeds {MAX_STACK_ITEMS} items; refused as a pickle bomb")
        if name in OBJECT_OPCODES:
            what = f" ({arg.replace(' ', '.')})" if isinstance(arg, str) else ""
            raise PickleRefused(
                f"pickle opcode {name}{what} builds an arbitrary object; refused, never executed"
            )
        if name in EXTENSION_OPCODES:
            raise PickleRefused(f"pickle opcode {name} names a registered extension; refused, never executed")
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, arg)
        elif name in _SIMPLE:
            stack.append(_SIMPLE[name])
        elif name in _PUSH_ARG:
            stack.append(arg)
        elif name in ("PROTO", "FRAME"):
            pass
        else:
            raise Malformed(f"pickle opcode {name} at byte {pos} is not used by torch checkpoints")

    def result(self, pos: int) -> Any:
        """The single object left on the stack at STOP."""
        if len(self.stack) != 1 or self.marks:
            raise Malformed(f"pickle stack holds {len(self.stack)} items at STOP (byte {pos})")
        return self.stack[0]

    # --- containers and memo -------------------------------------------------------------

    def pop_mark(self) -> list[Any]:
        """Items above the last MARK, removed with it."""
        if not self.marks:
            raise Malformed("pickle pops a MARK that was never set")
        at = self.marks.pop()
        items = self.stack[at:]
        del self.stack[at:]
        return items

    def pop(self) -> Any:
        """Top of the stack; a MARK boundary may not be crossed."""
        if not self.stack or (self.marks and len(self.stack) <= self.marks[-1]):
            raise Malformed("pickle pops from an empty stack")
        return self.stack.pop()

    def put(self, index: int) -> None:
        """Memoize the top of the stack."""
        if not self.stack:
            raise Malformed("pickle memoizes from an empty stack")
        if index not in self.memo and len(self.memo) >= MAX_MEMO_ENTRIES:
            raise PickleRefused(f"pickle memo exceeds {MAX_MEMO_ENTRIES} entries; refused as a pickle bomb")
        self.memo[index] = self.stack[-1]

    def set_items(self, target: Any, items: list[Any]) -> None:
        """dict[k] = v for pairs; keys must be plain scalars (never hashed containers)."""
        if not isinstance(target, dict) or len(items) % 2:
            raise Malformed("pickle SETITEM(S) on a non-dict or with an odd item count")
        for key, value in zip(items[::2], items[1::2], strict=True):
            if not isinstance(key, (str, int, float, bytes, bool)) and key is not None:
                raise Malformed(f"pickle dict key of type {type(key).__name__}")
            target[key] = value

    # --- calls -----------------------------------------------------------------------------

    def reduce(self) -> None:
        """REDUCE: call an allowlisted function, re-implemented here as a record constructor."""
        args = self.pop()
        func = self.pop()
        if not isinstance(func, Global) or (func.module, func.name) not in CALLABLE:
            what = func.qualname if isinstance(func, Global) else f"a {type(func).__name__}"
            raise PickleRefused(f"pickle calls {what}; refused, never executed")
        if not isinstance(args, tuple):
            raise Malformed(f"pickle calls {func.qualname} with arguments that are not a tuple")
        self.stack.append(CALLS[(func.module, func.name)](func, args))

    def build(self) -> None:
        """BUILD: only a state_dict's OrderedDict may take a state (its ``_metadata``), which is dropped."""
        state = self.pop()
        target = self.stack[-1] if self.stack else None
        if not isinstance(target, OrderedDictValue) or not isinstance(state, dict):
            raise PickleRefused(
                f"pickle BUILD sets state on a {kind_of(target)}; only an OrderedDict may take one; refused, never executed"
            )

    def persistent_load(self) -> None:
        """BINPERSID: ('storage', StorageType, key, location, numel) becomes a StorageRef."""
        pid = self.pop()
        ok = isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
        if not ok or not isinstance(pid[1], Global) or pid[1].name not in STORAGE_DTYPES:
            raise Malformed(f"persistent id {short_repr(pid)} is not a torch storage")
        _, kind, key, _location, numel = pid
        if not isinstance(key, str) or not is_int(numel) or numel < 0:
            raise Malformed(f"persistent id {short_repr(pid)} has a bad key or size")
        self.stack.append(StorageRef(key, kind.name, numel))


def _global(m: _Machine, arg: str) -> None:
    module, _, name = arg.partition(" ")
    m.stack.append(allowed_global(module, name))


def _stack_global(m: _Machine, _arg: None) -> None:
    name, module = m.pop(), m.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise Malformed("pickle STACK_GLOBAL on non-strings")
    m.stack.append(allowed_global(module, name))


def _mark(m: _Machine, _arg: None) -> None:
    m.marks.append(len(m.stack))


def _append(m: _Machine, _arg: None) -> None:
    value = m.pop()
    _append_to(m, [value])


def _appends(m: _Machine, _arg: None) -> None:
    items = m.pop_mark()
    _append_to(m, items)


def _append_to(m: _Machine, items: list[Any]) -> None:
    target = m.stack[-1] if m.stack else None
    if not isinstance(target, list):
        raise Malformed(f"pickle APPEND on a {kind_of(target)}")
    target.extend(items)


def _setitem(m: _Machine, _arg: None) -> None:
    value, key = m.pop(), m.pop()
    m.set_items(m.stack[-1] if m.stack else None, [key, value])


def _setitems(m: _Machine, _arg: None) -> None:
    items = m.pop_mark()
    m.set_items(m.stack[-1] if m.stack else None, items)


def _tuple_n(n: int) -> Callable[[_Machine, None], None]:
    def make(m: _Machine, _arg: None) -> None:
        items = [m.pop() for _ in range(n)][::-1]
        m.stack.append(tuple(items))

    return make


def _get(m: _Machine, index: int) -> None:
    if index not in m.memo:
        raise Malformed(f"pickle reads memo entry {index} that was never written")
    m.stack.append(m.memo[index])


def _dict_from_mark(m: _Machine, _arg: None) -> None:
    items = m.pop_mark()
    out: dict[Any, Any] = {}
    m.set_items(out, items)
    m.stack.append(out)


def _frozen(m: _Machine, _arg: None) -> None:
    m.stack.append(tuple(m.pop_mark()))  # a frozenset's items, kept as a tuple (never hashed)


def _additems(m: _Machine, _arg: None) -> None:
    items = m.pop_mark()
    target = m.stack[-1] if m.stack else None
    if not isinstance(target, list):
        raise Malformed(f"pickle ADDITEMS on a {kind_of(target)}")
    target.extend(items)  # sets are kept as lists: their items are never hashed


def _pop_mark(m: _Machine, _arg: None) -> None:
    m.pop_mark()


def _pop(m: _Machine, _arg: None) -> None:
    if m.marks and len(m.stack) == m.marks[-1]:
        m.marks.pop()  # POP of a MARK, as the stdlib unpickler allows
    else:
        m.pop()


def _dup(m: _Machine, _arg: None) -> None:
    m.stack.append(m.stack[-1] if m.stack else m.pop())


def _memoize(m: _Machine, _arg: None) -> None:
    m.put(len(m.memo))


_HANDLERS: dict[str, Callable[[_Machine, Any], None]] = {
    "GLOBAL": _global,
    "STACK_GLOBAL": _stack_global,
    "REDUCE": lambda m, _a: m.reduce(),
    "BUILD": lambda m, _a: m.build(),
    "BINPERSID": lambda m, _a: m.persistent_load(),
    "MARK": _mark,
    "POP": _pop,
    "POP_MARK": _pop_mark,
    "DUP": _dup,
    "EMPTY_LIST": lambda m, _a: m.stack.append([]),
    "EMPTY_DICT": lambda m, _a: m.stack.append({}),
    "EMPTY_SET": lambda m, _a: m.stack.append([]),
    "LIST": lambda m, _a: m.stack.append(m.pop_mark()),
    "TUPLE": lambda m, _a: m.stack.append(tuple(m.pop_mark())),
    "TUPLE1": _tuple_n(1),
    "TUPLE2": _tuple_n(2),
    "TUPLE3": _tuple_n(3),
    "DICT": _dict_from_mark,
    "FROZENSET": _frozen,
    "ADDITEMS": _additems,
    "APPEND": _append,
    "APPENDS": _appends,
    "SETITEM": _setitem,
    "SETITEMS": _setitems,
    "PUT": lambda m, a: m.put(int(a)),
    "BINPUT": lambda m, a: m.put(a),
    "LONG_BINPUT": lambda m, a: m.put(a),
    "MEMOIZE": _memoize,
    "GET": lambda m, a: _get(m, int(a)),
    "BINGET": _get,
    "LONG_BINGET": _get,
}
# Opcodes whose parsed argument is the value pushed (numbers, strings, bytes).
_PUSH_ARG = frozenset(
    [
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
    ]
)
