"""Test helpers that write MANO-layout pickles without chumpy (no tests here).

The official ``MANO_RIGHT.pkl`` cannot be redistributed, so the tests build
stand-ins with the same on-disk layout: a protocol-2 pickle (as written by
Python 2's cPickle) of a dict holding numpy arrays, ``J_regressor`` as a
``scipy.sparse.csc_matrix``, ``shapedirs`` as a chumpy ``Ch`` object and the
strings ``bs_type`` / ``bs_style``.

chumpy is not installed, so ``Ch`` objects are emulated: a local class carries a
``_pickle_as = (module, name)`` marker and :class:`_MimicPickler` writes that
module/name as the pickle global instead of the local class.  The state is the
dict chumpy's ``Ch.__getstate__`` returns (the instance ``__dict__`` minus the
``_parents`` and ``_cache`` weak dictionaries), so the value sits under ``'x'``.
At protocols 1 and 2 byte strings and ``str`` values are written as Python 2
``str`` opcodes (``SHORT_BINSTRING`` / ``BINSTRING``), the way the official file
stores dict keys, array payloads and ``bs_type``, and numpy helpers are named
``numpy.core.multiarray`` as numpy 1.x named them.

``write_malicious_pickle`` writes pickles whose unrestricted load would run a
payload that creates a canary file.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from typing import Any, Iterable, Mapping

import numpy as np
import scipy.sparse as sp

# MANO joint order: wrist, index1-3, middle1-3, little1-3, ring1-3, thumb1-3.
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
_UINT32_MINUS_ONE = 4294967295  # how the official kintree_table marks the root


def default_kintree_table() -> np.ndarray:
    """``kintree_table`` as in the official file: int64, root parent 2**32 - 1."""
    parents = [(_UINT32_MINUS_ONE if p < 0 else p) for p in MANO_PARENTS]
    return np.array([parents, list(range(16))], dtype=np.int64)


# --------------------------------------------------------------------------
# Emulated foreign classes
# --------------------------------------------------------------------------


class _PickledAs:
    """Base for local classes that pickle under a foreign ``module.name``."""

    _pickle_as: tuple[str, str] = ("", "")

    def __init__(self, state: Mapping[str, Any]):
        self._state = dict(state)

    def __getstate__(self) -> dict:
        return self._state


_FOREIGN_CLASSES: dict[tuple[str, str], type] = {}


def foreign_class(module: str, name: str) -> type:
    """A local class whose instances pickle as instances of ``module.name``."""
    key = (module, name)
    if key not in _FOREIGN_CLASSES:
        _FOREIGN_CLASSES[key] = type(f"Fake_{name}", (_PickledAs,), {"_pickle_as": key})
    return _FOREIGN_CLASSES[key]


def _chumpy_state(**terms: Any) -> dict:
    # What chumpy.ch.Ch.__getstate__ returns for a freshly built node: its
    # __dict__ without the unpicklable '_parents' and '_cache'.
    state = {
        "_dirty_vars": set(terms),
        "_itr": None,
        "_make_dense": False,
        "_make_sparse": False,
        "_depends_on_deps": {},
    }
    state.update(terms)
    return state


def fake_ch(x: Any) -> _PickledAs:
    """A ``chumpy.ch.Ch`` holding ``x`` (a float64 array, or another fake node)."""
    if not isinstance(x, _PickledAs):
        x = np.asarray(x, dtype=np.float64)
    return foreign_class("chumpy.ch", "Ch")(_chumpy_state(x=x))


def fake_chumpy_node(module: str, name: str, **terms: Any) -> _PickledAs:
    """Any chumpy node.

    Example: ``fake_chumpy_node('chumpy.reordering', 'Select', a=node, idxs=ids)``.
    """
    return foreign_class(module, name)(_chumpy_state(**terms))


def legacy_csc_matrix(dense: np.ndarray) -> _PickledAs:
    """A csc_matrix as Python 2 era scipy pickled it (``scipy.sparse.csc.csc_matrix``)."""
    m = sp.csc_matrix(np.asarray(dense, dtype=np.float64))
    state = {"_shape": tuple(int(s) for s in m.shape), "maxprint": 50, "format": "csc",
             "indices": m.indices.astype(np.int32), "indptr": m.indptr.astype(np.int32),
             "data": m.data.astype(np.float64)}
    return foreign_class("scipy.sparse.csc", "csc_matrix")(state)


# --------------------------------------------------------------------------
# Pickler that writes foreign globals and Python 2 strings
# --------------------------------------------------------------------------


class _MimicPickler(pickle._Pickler):  # the pure-Python pickler lets us override opcodes
    dispatch = dict(pickle._Pickler.dispatch)

    # numpy 2 names its internals numpy._core; numpy 1.x (and the official
    # Python 2 file) say numpy.core.
    _PY2_MODULE_RENAMES = {"numpy._core.multiarray": "numpy.core.multiarray",
                           "numpy._core.numeric": "numpy.core.numeric"}

    def __init__(self, file: Any, protocol: int, py2_strings: bool):
        super().__init__(file, protocol=protocol, fix_imports=True)
        self._py2_strings = py2_strings and protocol in (1, 2)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        target = getattr(obj, "_pickle_as", None) if isinstance(obj, type) else None
        if not target or not issubclass(obj, _PickledAs):
            module = getattr(obj, "__module__", None)
            if not (self._py2_strings and module in self._PY2_MODULE_RENAMES):
                return super().save_global(obj, name)
            target = (self._PY2_MODULE_RENAMES[module], name or obj.__qualname__)
        module, qualname = target
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + module.encode("ascii") + b"\n"
                       + qualname.encode("ascii") + b"\n")
        self.memoize(obj)

    def _save_py2_str(self, data: bytes, obj: Any) -> None:
        n = len(data)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + data)
        self.memoize(obj)

    def save_bytes(self, obj: bytes) -> None:
        if self._py2_strings:
            return self._save_py2_str(obj, obj)
        return pickle._Pickler.save_bytes(self, obj)

    def save_str(self, obj: str) -> None:
        if self._py2_strings:
            try:
                return self._save_py2_str(obj.encode("latin1"), obj)
            except UnicodeEncodeError:
                pass
        return pickle._Pickler.save_str(self, obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def dump_mimic(obj: Any, path: str | os.PathLike, protocol: int = 2,
               py2_strings: bool = True) -> None:
    buf = io.BytesIO()
    _MimicPickler(buf, protocol, py2_strings).dump(obj)
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())


# --------------------------------------------------------------------------
# MANO-layout writer
# --------------------------------------------------------------------------


def write_mano_pickle(path: str | os.PathLike, v_template: Any, faces: Any, weights: Any,
                      J_regressor: Any, shapedirs: Any, posedirs: Any = None,
                      kintree_table: Any = None, hands_components: Any = None,
                      hands_mean: Any = None, protocol: int = 2, *,
                      ch_keys: Iterable[str] = ("shapedirs",), legacy_sparse: bool = False,
                      omit: Iterable[str] = (), extra: Mapping[str, Any] | None = None,
                      py2_strings: bool = True) -> dict:
    """Write a pickle laid out like the official ``MANO_RIGHT.pkl``.

    ``faces`` is stored under ``'f'`` as uint32; ``J_regressor`` as a
    ``scipy.sparse.csc_matrix`` (``legacy_sparse=True``: under scipy's old module
    path ``scipy.sparse.csc``); keys in ``ch_keys`` as chumpy ``Ch`` objects;
    ``kintree_table`` defaults to the MANO tree (root parent 2**32 - 1).
    ``omit`` drops keys, ``extra`` adds or replaces entries verbatim.  Arrays are
    written with the shapes given, so wrong shapes can be produced on purpose.

    Returns the dict of plain numpy values that was written (for comparisons).
    """
    expected: dict[str, Any] = {
        "v_template": np.asarray(v_template, dtype=np.float64),
        "f": np.asarray(faces).astype(np.uint32),
        "weights": np.asarray(weights, dtype=np.float64),
        "J_regressor": np.asarray(J_regressor, dtype=np.float64),
        "shapedirs": np.asarray(shapedirs, dtype=np.float64),
        "kintree_table": (default_kintree_table() if kintree_table is None
                          else np.asarray(kintree_table, dtype=np.int64)),
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }
    if posedirs is not None:
        expected["posedirs"] = np.asarray(posedirs, dtype=np.float64)
    if hands_components is not None:
        expected["hands_components"] = np.asarray(hands_components, dtype=np.float64)
        expected["hands_coeffs"] = np.zeros((4, expected["hands_components"].shape[0]))
    if hands_mean is not None:
        expected["hands_mean"] = np.asarray(hands_mean, dtype=np.float64)
    for key in omit:
        expected.pop(key, None)

    on_disk: dict[str, Any] = {}
    ch_keys = set(ch_keys)
    for key, value in expected.items():
        if key == "J_regressor":
            on_disk[key] = legacy_csc_matrix(value) if legacy_sparse else sp.csc_matrix(value)
        elif key in ch_keys:
            on_disk[key] = fake_ch(value)
        else:
            on_disk[key] = value
    if extra:
        on_disk.update(extra)
    dump_mimic(on_disk, path, protocol=protocol, py2_strings=py2_strings)
    return expected


def random_mano_arrays(seed: int = 0, n_verts: int = 778, n_faces: int = 1538,
                       n_shapes: int = 10) -> dict:
    """Random arrays with the official MANO shapes, as keyword arguments."""
    rng = np.random.default_rng(seed)
    weights = rng.random((n_verts, 16))
    jreg = rng.random((16, n_verts)) * (rng.random((16, n_verts)) < 0.05)
    return {
        "v_template": rng.normal(size=(n_verts, 3)) * 0.05,
        "faces": rng.integers(0, n_verts, size=(n_faces, 3)),
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "J_regressor": jreg,
        "shapedirs": rng.normal(size=(n_verts, 3, n_shapes)) * 1e-3,
        "posedirs": rng.normal(size=(n_verts, 3, 135)) * 1e-3,
        "hands_components": rng.normal(size=(45, 45)),
        "hands_mean": rng.normal(size=(45,)) * 0.1,
    }


# --------------------------------------------------------------------------
# Malicious pickles
# --------------------------------------------------------------------------


def _binunicode(text: str) -> bytes:
    data = text.encode("utf-8")
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n"


def _call(module: str, name: str, *str_args: str) -> bytes:
    return (_global(module, name) + pickle.MARK + b"".join(_binunicode(a) for a in str_args)
            + pickle.TUPLE + pickle.REDUCE)


MALICIOUS_KINDS = ("os.system", "posix.system", "builtins.eval", "__builtin__.eval",
                   "subprocess.Popen", "nested", "reconstructor")


def write_malicious_pickle(path: str | os.PathLike, canary: str | os.PathLike,
                           kind: str = "os.system") -> str:
    """Write a pickle that, loaded with plain :func:`pickle.load`, creates ``canary``.

    Returns the dotted name of the global a restricted loader must refuse.
    Kinds: ``os.system`` / ``posix.system`` (shell ``touch``), ``builtins.eval``
    / ``__builtin__.eval`` (Python ``open(canary, 'w')``), ``subprocess.Popen``,
    ``nested`` (a MANO-looking dict whose ``shapedirs`` Ch state hides an
    ``os.system`` call), ``reconstructor`` (``copy_reg._reconstructor`` asked to
    build a non-chumpy class; no side effect, refused by argument check).
    """
    canary = os.fspath(canary)
    shell = f"touch '{canary}'"
    py = f"open({canary!r}, 'w').close()"
    proto = pickle.PROTO + bytes([2])
    if kind in ("os.system", "posix.system"):
        module, name = kind.split(".")
        body, refused = _call(module, name, shell), kind
    elif kind in ("builtins.eval", "__builtin__.eval"):
        module, name = kind.split(".")
        body, refused = _call(module, name, py), kind
    elif kind == "subprocess.Popen":
        body = (_global("subprocess", "Popen") + pickle.MARK + pickle.MARK
                + _binunicode("touch") + _binunicode(canary) + pickle.LIST
                + pickle.TUPLE + pickle.REDUCE)
        refused = kind
    elif kind == "nested":
        buf = io.BytesIO()
        # A plausible MANO dict, then a Ch whose state carries the payload.
        _MimicPickler(buf, 2, True).dump({"bs_type": "lrotmin",
                                          "v_template": np.zeros((4, 3))})
        head = buf.getvalue()[2:-1]  # strip PROTO and STOP: leaves the dict on the stack
        body = (head + _binunicode("shapedirs") + _global("chumpy.ch", "Ch")
                + pickle.EMPTY_TUPLE + pickle.NEWOBJ + pickle.EMPTY_DICT
                + _binunicode("x") + _call("os", "system", shell) + pickle.SETITEM
                + pickle.BUILD + pickle.SETITEM)
        refused = "os.system"
    elif kind == "reconstructor":
        body = (_global("copy_reg", "_reconstructor") + _global("__builtin__", "set")
                + _global("__builtin__", "set") + pickle.EMPTY_LIST + pickle.TUPLE3
                + pickle.REDUCE)
        refused = "copy_reg._reconstructor"
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {MALICIOUS_KINDS}")
    with open(path, "wb") as fh:
        fh.write(proto + body + pickle.STOP)
    return refused


__all__ = ["write_mano_pickle", "write_malicious_pickle", "random_mano_arrays",
           "default_kintree_table", "fake_ch", "fake_chumpy_node", "legacy_csc_matrix",
           "foreign_class", "dump_mimic", "MALICIOUS_KINDS", "MANO_PARENTS"]
