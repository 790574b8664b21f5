"""Read the python-pickled CIFAR files without unpickling them.

CIFAR-10/100 ship as pickles of dicts holding lists, numbers, strings and one numpy array. A
pickle is a program: ``pickle.load`` runs whatever callables it names, so a tampered file runs
code. :func:`load_plain` walks the opcodes with :func:`pickletools.genops` (which parses, never
executes) and builds only dicts, lists, tuples, numbers, strings and uint8-style numpy arrays;
any other callable or opcode is refused with :class:`UnsafePickle`.
"""

from __future__ import annotations

import pickletools
from pathlib import Path
from typing import Any

import numpy as np

_RECONSTRUCT = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"}
_FROMBUFFER = {"numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer"}
_ENCODE = "_codecs.encode"  # protocols 0-2 spell bytes as _codecs.encode(text, "latin1")
_ALLOWED = _RECONSTRUCT | _FROMBUFFER | {"numpy.ndarray", "numpy.dtype", _ENCODE}
_MARK = object()


class UnsafePickle(ValueError):
    """The file is not a plain data pickle (it names code, or uses an unsupported opcode)."""


class _Array:
    """A numpy array under construction: ``_reconstruct(...)`` then ``BUILD`` with its state."""

    def __init__(self) -> None:
        self.value: np.ndarray | None = None

    def build(self, state: tuple) -> np.ndarray:
        _, shape, dtype, fortran, raw = state
        array = np.frombuffer(_buffer(raw), dtype=_plain_dtype(dtype)).copy()
        return array.reshape(shape, order="F" if fortran else "C")


def _buffer(raw: Any) -> bytes:
    """An array's bytes as stored; never ``bytes(n)`` of a number (n zero bytes: a memory bomb)."""
    if isinstance(raw, str):
        return raw.encode("latin1")
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    raise UnsafePickle(f"holds array data of type {type(raw).__name__}, not bytes")


def _plain_dtype(dtype: Any) -> np.dtype:
    """A numeric dtype of at most 16 bytes per item (no objects, no huge void or string items)."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or dtype.itemsize > 16:
        raise UnsafePickle(f"holds an array of dtype {dtype!r}, not plain numbers")
    return dtype


def _call(name: str, args: tuple) -> Any:
    if name in _RECONSTRUCT:
        return _Array()
    if name == "numpy.dtype":
        if not (args and isinstance(args[0], str) and len(args[0]) <= 8):
            raise UnsafePickle(f"names dtype {str(args)[:40]}, not a plain one")
        return np.dtype(args[0])
    if name == _ENCODE and len(args) == 2 and isinstance(args[0], str) and args[1] == "latin1":
        return args[0].encode("latin1")
    if name in _FROMBUFFER:
        buffer, dtype, shape, order = args
        return np.frombuffer(_buffer(buffer), dtype=_plain_dtype(dtype)).reshape(shape, order=order).copy()
    raise UnsafePickle(f"refuses to call {name}")


def _build(obj: Any, state: Any) -> Any:
    if isinstance(obj, _Array):
        return obj.build(state)
    if isinstance(obj, np.dtype):
        return obj  # byte order and flags of a plain dtype: nothing to restore
    raise UnsafePickle(f"refuses to restore the state of {type(obj).__name__}")


def _pop_mark(stack: list) -> list:
    index = max(i for i, item in enumerate(stack) if item is _MARK)
    items = stack[index + 1 :]
    del stack[index:]
    return items


def _text(value: Any) -> Any:
    """Python 2 ``str`` (read as bytes) used as text: latin-1, as ``pickle.load(encoding="latin1")``."""
    return value.decode("latin1") if isinstance(value, bytes) else value


_PUSH = {
    "NONE": lambda a: None,
    "NEWTRUE": lambda a: True,
    "NEWFALSE": lambda a: False,
    "EMPTY_DICT": lambda a: {},
    "EMPTY_LIST": lambda a: [],
    "EMPTY_TUPLE": lambda a: (),
}
_SCALARS = {
    "BININT",
    "BININT1",
    "BININT2",
    "LONG1",
    "LONG4",
    "INT",
    "LONG",
    "BINFLOAT",
    "FLOAT",
    "BINUNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINBYTES",
    "BINBYTES",
    "BINBYTES8",
    "BYTEARRAY8",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_IGNORED = {"PROTO", "FRAME"}


def _step(name: str, arg: Any, stack: list, memo: dict) -> None:
    """Apply one opcode to the stack (no code from the file ever runs)."""
    if name in _IGNORED:
        return
    if name in _PUSH:
        stack.append(_PUSH[name](arg))
    elif name in _SCALARS:
        stack.append(arg)
    elif name == "MARK":
        stack.append(_MARK)
    elif name in _MEMO_PUT or name == "MEMOIZE":
        memo[arg if name != "MEMOIZE" else len(memo)] = stack[-1]
    elif name in _MEMO_GET:
        stack.append(memo[arg])
    else:
        _step_container(name, arg, stack)


def _step_container(name: str, arg: Any, stack: list) -> None:
    if name in ("TUPLE", "LIST"):
        items = _pop_mark(stack)
        stack.append(tuple(items) if name == "TUPLE" else items)
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        size = int(name[-1])
        items = tuple(stack[-size:])
        del stack[-size:]
        stack.append(items)
    elif name in ("APPEND", "APPENDS"):
        items = [stack.pop()] if name == "APPEND" else _pop_mark(stack)
        stack[-1].extend(items)
    elif name in ("SETITEM", "SETITEMS", "DICT"):
        items = stack[-2:] if name == "SETITEM" else _pop_mark(stack)
        if name == "SETITEM":
            del stack[-2:]
        target = {} if name == "DICT" else stack[-1]
        target.update({_text(k): v for k, v in zip(items[::2], items[1::2])})
        if name == "DICT":
            stack.append(target)
    else:
        _step_code(name, arg, stack)


def _step_code(name: str, arg: Any, stack: list) -> None:
    if name in ("GLOBAL", "STACK_GLOBAL"):
        if name == "STACK_GLOBAL":
            module, qualname = stack[-2:]
            del stack[-2:]
        else:
            module, qualname = arg.split(" ", 1)
        full = f"{_text(module)}.{_text(qualname)}"
        if full not in _ALLOWED:
            raise UnsafePickle(f"names {full}, which is not plain data")
        stack.append(("global", full))
    elif name == "REDUCE":
        args, func = stack.pop(), stack.pop()
        stack.append(_call(func[1], args))
    elif name == "BUILD":
        state = stack.pop()
        stack.append(_build(stack.pop(), state))
    else:
        raise UnsafePickle(f"uses the {name} opcode, which plain data does not need")


MAX_BYTES = 1 << 30  # CIFAR-100's test file is 31 MB


def read_regular(path: str | Path, limit: int = MAX_BYTES) -> bytes:
    """A regular file's bytes (never a pipe or device, which could block or never end), at most ``limit``."""
    path = Path(path)
    if not path.is_file():
        raise UnsafePickle(f"{path} is not a regular file")
    size = path.stat().st_size
    if size > limit:
        raise UnsafePickle(f"{path} is {size} bytes, more than the {limit} a data pickle may hold")
    return path.read_bytes()


def load_plain(path: str | Path) -> Any:
    """The data in a pickle of dicts, lists, numbers, strings and numpy arrays, without
    unpickling. Everything built comes from the file's own bytes (no object larger than it)."""
    data = read_regular(path)
    stack: list = []
    memo: dict = {}
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "STOP":
                return stack.pop()
            _step(opcode.name, arg, stack, memo)
    except UnsafePickle as err:
        raise UnsafePickle(f"{path} {err}") from None
    except (
        ValueError,
        IndexError,
        KeyError,
        TypeError,
        AttributeError,
        OverflowError,
        MemoryError,
        RecursionError,
    ) as err:
        raise UnsafePickle(f"{path} is not a readable data pickle ({type(err).__name__}: {err})") from None
    raise UnsafePickle(f"{path} ends without a STOP opcode")
