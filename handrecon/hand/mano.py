"""Safe, chumpy-free reader for the official MANO hand model file.

MANO is licence-restricted, so handrecon never ships it: users download
``MANO_RIGHT.pkl`` themselves from https://mano.is.tue.mpg.de (free
registration, licence acceptance required; the v1.2 archive holds it under
``mano_v1_2/models/``).  The official file is a Python 2 pickle of a dict whose
values are numpy arrays, a ``scipy.sparse.csc_matrix`` (``J_regressor``),
chumpy ``Ch`` objects (``shapedirs``, sometimes ``J``) and plain strings
(``bs_type``, ``bs_style``).

Loading it with :func:`pickle.load` would require chumpy (unmaintained, broken
on current numpy) and would execute whatever code the pickle names.
:func:`read_mano_pickle` instead uses a restricted unpickler:

* only an explicit allow-list of globals can be referenced: numpy's array,
  dtype and scalar reconstruction helpers, the scipy.sparse matrix classes,
  chumpy classes, and a handful of harmless builtins (``set``, ``object``,
  ``_codecs.encode`` for latin-1 only, ``copy_reg._reconstructor`` for our
  stand-ins only).  Every other global (``os.system``, ``builtins.eval``,
  ``subprocess.Popen``, arbitrary classes...) raises :class:`ManoFileError`
  naming the file and the global *before* anything is called;
* scipy.sparse and chumpy classes are never imported or instantiated: they are
  replaced by inert stand-ins that only record their pickled state, and the
  arrays are rebuilt from that state afterwards (a chumpy ``Ch`` stores its
  value under ``'x'``; a small set of chumpy reordering / arithmetic nodes such
  as ``Select``, ``Reshape``, ``transpose``, ``add`` are evaluated with numpy);
* numpy arrays are rebuilt by wrappers that only create plain ``ndarray``\\ s.

The returned dict holds every key of the file, with numeric values as
C-contiguous, writable numpy arrays (floating -> float64, integer -> int64) and
strings as ``str``.  :func:`validate_mano` checks the keys and shapes a
MANO-style linear-blend-skinning model needs.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["read_mano_pickle", "read_restricted_pickle", "validate_mano", "ManoFileError",
           "MANO_FINGERTIP_VERTICES"]

#: Vertex ids of the five fingertips on the 778-vertex MANO mesh, in the order
#: thumb, index, middle, ring, little (the FreiHAND convention; smplx uses
#: 554/671 for ring/little, manopth 745/317/444/556/673).
MANO_FINGERTIP_VERTICES = (744, 320, 443, 555, 672)

MANO_URL = "https://mano.is.tue.mpg.de"
_NUM_JOINTS = 16
_NUM_POSE_BLENDSHAPES = 9 * (_NUM_JOINTS - 1)  # 135, "lrotmin" pose features
_MAX_CHUMPY_DEPTH = 64
# Upper bound on arrays we *create* (densified sparse matrices, evaluated chumpy
# nodes), so a tiny crafted file cannot demand terabytes.  MANO's largest array,
# posedirs, has 778 * 3 * 135 ~ 315k elements.
_MAX_DERIVED_ELEMENTS = 50_000_000


class ManoFileError(ValueError):
    """A MANO model file is unreadable, unsafe, or not MANO-shaped.

    Attributes ``path`` (the file), ``key`` (the offending dict key, if any) and
    ``global_name`` (the refused pickle global, if any) help callers report it.
    """

    def __init__(self, message: str, *, path: Any = None, key: str | None = None,
                 global_name: str | None = None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)
        self.key = key
        self.global_name = global_name


# --------------------------------------------------------------------------
# Inert stand-ins for scipy.sparse and chumpy objects
# --------------------------------------------------------------------------


class _StandIn:
    """Records what a pickled object would have been built from; runs nothing."""

    _qualified_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_StandIn":
        obj = super().__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = None
        return obj

    def __setstate__(self, state: Any) -> None:
        # Pickle's BUILD may pass (dict_state, slot_state); keep the dict part.
        if isinstance(state, tuple) and len(state) == 2 and (
                state[0] is None or isinstance(state[0], dict)) and (
                state[1] is None or isinstance(state[1], dict)):
            merged: dict = {}
            for part in state:
                if part:
                    merged.update(part)
            state = merged
        self.state = state

    def state_dict(self) -> dict:
        return self.state if isinstance(self.state, dict) else {}

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<stand-in for {self._qualified_name}>"


class _SparseStandIn(_StandIn):
    _format = "csc"


class _ChumpyStandIn(_StandIn):
    _chumpy_name = "Ch"


_SPARSE_FORMATS = ("csc", "csr", "coo")
_SPARSE_CLASSES: dict[tuple[str, str], type] = {}
_CHUMPY_CLASSES: dict[tuple[str, str], type] = {}
_CHUMPY_MODULES = ("chumpy.ch", "chumpy.reordering", "chumpy.ch_ops", "chumpy.linalg",
                   "chumpy.logic", "chumpy")


def _sparse_class(module: str, name: str, fmt: str) -> type:
    key = (module, name)
    if key not in _SPARSE_CLASSES:
        _SPARSE_CLASSES[key] = type(
            f"_Sparse_{name}", (_SparseStandIn,),
            {"_format": fmt, "_qualified_name": f"{module}.{name}", "__module__": __name__})
    return _SPARSE_CLASSES[key]


def _chumpy_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _CHUMPY_CLASSES:
        _CHUMPY_CLASSES[key] = type(
            f"_Chumpy_{name}", (_ChumpyStandIn,),
            {"_chumpy_name": name, "_qualified_name": f"{module}.{name}", "__module__": __name__})
    return _CHUMPY_CLASSES[key]


def _is_stand_in_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, _StandIn) and obj not in (
        _StandIn, _SparseStandIn, _ChumpyStandIn)


# --------------------------------------------------------------------------
# Safe replacements for the callables a numpy / Python 2 pickle references
# --------------------------------------------------------------------------


class _Refusal(Exception):
    """Internal: an allowed callable was called with disallowed arguments."""


class _SafeCallable:
    """Wraps an allowed callable; refuses BUILD so a pickle cannot mutate it."""

    __slots__ = ("_fn", "_label")

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_label", label)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        raise _Refusal(f"pickle tried to modify {self._label}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise _Refusal(f"pickle tried to modify {self._label}")

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<safe {self._label}>"


def _as_bytes(data: Any) -> bytes:
    """Python 2 ``str`` payloads arrive latin-1 decoded; turn them back to bytes."""
    if isinstance(data, str):
        return data.encode("latin1")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise _Refusal(f"expected a byte string, got {type(data).__name__}")


def _refuse_call(*args: Any, **kwargs: Any) -> Any:
    raise _Refusal("numpy.ndarray may only appear as the type argument of _reconstruct")


# ``numpy.ndarray`` resolves to this token rather than the real class, so a
# pickle cannot call ndarray(...) directly (e.g. to allocate a huge array).
_NDARRAY_TOKEN = _SafeCallable(_refuse_call, "numpy.ndarray")


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # numpy.core.multiarray._reconstruct(ndarray, (0,), b'b'): an empty array
    # that the following BUILD fills via ndarray.__setstate__.
    if subtype is not _NDARRAY_TOKEN:
        raise _Refusal(f"_reconstruct of non-ndarray type {subtype!r}")
    if isinstance(dtype, (bytes, str)):
        dtype = np.dtype(_as_bytes(dtype).decode("ascii"))
    elif not isinstance(dtype, np.dtype):
        raise _Refusal(f"_reconstruct with dtype {dtype!r}")
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    if any(s < 0 for s in shape) or int(np.prod(shape, dtype=np.int64)) > 16:
        raise _Refusal(f"_reconstruct with shape {shape}")
    return np.ndarray(shape, dtype)


def _np_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    # numpy._core.numeric._frombuffer: how numpy pickles arrays at protocol 5.
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise _Refusal(f"_frombuffer with dtype {dtype!r}")
    if order not in ("C", "F"):
        raise _Refusal(f"_frombuffer with order {order!r}")
    shape = tuple(int(s) for s in shape)
    flat = np.frombuffer(_as_bytes(buffer), dtype=dtype)
    return flat.reshape(shape, order=order).copy(order="C")


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    # numpy.core.multiarray.scalar(dtype, raw_bytes): a numpy scalar.
    if not isinstance(dtype, np.dtype):
        raise _Refusal(f"scalar with dtype {dtype!r}")
    if dtype.hasobject:
        return data
    raw = _as_bytes(data)
    if len(raw) != dtype.itemsize:
        raise _Refusal("scalar payload does not match its dtype")
    return np.frombuffer(raw, dtype=dtype, count=1)[0]


def _np_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, (str, bytes)):
        raise _Refusal(f"dtype spec {spec!r}")
    text = spec.decode("ascii") if isinstance(spec, bytes) else spec
    return np.dtype(text, align=bool(align), copy=bool(copy))


def _codecs_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Python 3 pickles bytes at protocols < 3 as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in (
            "latin1", "latin-1", "iso-8859-1", "l1"):
        raise _Refusal(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # copy_reg._reconstructor(cls, object, None): how protocol 0/1 pickles
    # new-style objects.  Only our inert stand-ins may be created this way.
    if not _is_stand_in_class(cls) or base is not object or state is not None:
        raise _Refusal(f"copy_reg._reconstructor({getattr(cls, '__name__', cls)!r}, "
                       f"{getattr(base, '__name__', base)!r}, ...)")
    return cls.__new__(cls)


def _build_allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray",
                "numpy.core._multiarray_umath", "numpy._core._multiarray_umath"):
        allowed[(mod, "_reconstruct")] = _SafeCallable(_np_reconstruct, f"{mod}._reconstruct")
        allowed[(mod, "scalar")] = _SafeCallable(_np_scalar, f"{mod}.scalar")
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _SafeCallable(_np_frombuffer, f"{mod}._frombuffer")
    allowed[("numpy", "ndarray")] = _NDARRAY_TOKEN
    allowed[("numpy", "dtype")] = _SafeCallable(_np_dtype, "numpy.dtype")
    for mod in ("_codecs", "codecs"):
        allowed[(mod, "encode")] = _SafeCallable(_codecs_encode, f"{mod}.encode")
    for mod in ("copy_reg", "copyreg"):
        allowed[(mod, "_reconstructor")] = _SafeCallable(
            _copyreg_reconstructor, f"{mod}._reconstructor")
    for mod in ("__builtin__", "builtins"):
        allowed[(mod, "object")] = object
        allowed[(mod, "set")] = set
        allowed[(mod, "frozenset")] = frozenset
    # scipy.sparse: old (scipy.sparse.csc), new (scipy.sparse._csc) and
    # top-level module paths; matrix and array flavours.
    for fmt in _SPARSE_FORMATS:
        for mod in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}", "scipy.sparse"):
            for name in (f"{fmt}_matrix", f"{fmt}_array"):
                allowed[(mod, name)] = _sparse_class(mod, name, fmt)
    return allowed


_ALLOWED_GLOBALS = _build_allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: str) -> None:
        super().__init__(file, encoding="latin1", fix_imports=True)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        obj = _ALLOWED_GLOBALS.get((module, name))
        if obj is not None:
            return obj
        if module in _CHUMPY_MODULES and name.isidentifier() and not name.startswith("__"):
            return _chumpy_class(module, name)
        qualified = f"{module}.{name}"
        raise ManoFileError(
            f"{self._path}: refusing to load pickle global '{qualified}': it is not on the "
            "allow-list for MANO model files (numpy arrays, scipy.sparse matrices, chumpy "
            "objects). The file is not a genuine MANO model or has been tampered with; "
            "nothing in it was executed.",
            path=self._path, global_name=qualified)

    def persistent_load(self, pid: Any) -> Any:
        raise ManoFileError(
            f"{self._path}: refusing pickle persistent id {pid!r}: not a MANO model file",
            path=self._path)


# --------------------------------------------------------------------------
# Turning the unpickled tree into plain numpy
# --------------------------------------------------------------------------


class _Materializer:
    def __init__(self, path: str) -> None:
        self.path = path
        self._memo: dict[int, Any] = {}
        self._active: set[int] = set()

    def error(self, key: str, message: str) -> ManoFileError:
        return ManoFileError(f"{self.path}: key '{key}': {message}", path=self.path, key=key)

    def value(self, obj: Any, key: str, depth: int = 0) -> Any:
        """Plain-Python/numpy version of ``obj``: stand-ins become arrays."""
        if depth > _MAX_CHUMPY_DEPTH:
            raise self.error(key, "value nested too deeply")
        if isinstance(obj, _StandIn):
            ident = id(obj)
            if ident in self._memo:
                return self._memo[ident]
            if ident in self._active:
                raise self.error(key, "cyclic chumpy/sparse object graph")
            self._active.add(ident)
            try:
                if isinstance(obj, _SparseStandIn):
                    result = self._sparse(obj, key, depth)
                else:
                    result = self._chumpy(obj, key, depth)
            finally:
                self._active.discard(ident)
            self._memo[ident] = result
            return result
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                items = [self.value(v, key, depth + 1) for v in obj.ravel()]
                try:
                    return np.asarray(items, dtype=np.float64).reshape(obj.shape)
                except (TypeError, ValueError):
                    return obj
            return obj
        if isinstance(obj, np.generic):
            return np.asarray(obj)
        if isinstance(obj, (bytes, bytearray)):
            return bytes(obj).decode("latin1")
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.value(v, key, depth + 1) for v in obj)
        if isinstance(obj, dict):
            return {k: self.value(v, key, depth + 1) for k, v in obj.items()}
        return obj

    def array(self, obj: Any, key: str, depth: int, what: str) -> np.ndarray:
        val = self.value(obj, key, depth + 1)
        if isinstance(val, str):
            raise self.error(key, f"{what} is a string, expected an array")
        try:
            arr = np.asarray(val)
        except (TypeError, ValueError) as exc:
            raise self.error(key, f"{what} is not array-like ({exc})") from None
        if arr.dtype.hasobject:
            raise self.error(key, f"{what} is not a numeric array")
        return arr

    def _sparse(self, obj: _SparseStandIn, key: str, depth: int) -> np.ndarray:
        import scipy.sparse as sp

        st = obj.state_dict()
        shape = st.get("_shape", st.get("shape"))
        try:
            shape = tuple(int(s) for s in shape)
            if len(shape) != 2 or min(shape) < 0:
                raise ValueError(f"bad shape {shape}")
            _check_size(shape)
            data = self.array(st["data"], key, depth, "sparse data")
            if obj._format == "coo":
                if "coords" in st:
                    row, col = (self.array(c, key, depth, "sparse coords") for c in st["coords"])
                else:
                    row = self.array(st["row"], key, depth, "sparse row")
                    col = self.array(st["col"], key, depth, "sparse col")
                mat = sp.coo_matrix((data, (row, col)), shape=shape)
            else:
                indices = self.array(st["indices"], key, depth, "sparse indices")
                indptr = self.array(st["indptr"], key, depth, "sparse indptr")
                ctor = sp.csc_matrix if obj._format == "csc" else sp.csr_matrix
                mat = ctor((data, indices, indptr), shape=shape)
            return np.asarray(mat.toarray())
        except ManoFileError:
            raise
        except Exception as exc:  # malformed sparse state
            raise self.error(
                key, f"malformed {obj._qualified_name} ({type(exc).__name__}: {exc})") from None

    def _chumpy(self, obj: _ChumpyStandIn, key: str, depth: int) -> np.ndarray:
        st = obj.state_dict()
        name = obj._chumpy_name
        qualified = obj._qualified_name

        def term(t: str, default: Any = KeyError) -> Any:
            if t not in st:
                if default is KeyError:
                    raise self.error(key, f"chumpy {qualified} object has no term '{t}'")
                return default
            return self.value(st[t], key, depth + 1)

        def arr(t: str) -> np.ndarray:
            if t not in st:
                raise self.error(key, f"chumpy {qualified} object has no term '{t}'")
            return self.array(st[t], key, depth, f"chumpy term '{t}'")

        evaluators: dict[str, Callable[[], Any]] = {
            "Ch": lambda: arr("x"),
            "ChHandle": lambda: arr("x"),
            "Reshape": lambda: arr("a").reshape(term("newshape")),
            "Select": lambda: (arr("a").ravel()[arr("idxs")].reshape(term("preferred_shape"))
                               if st.get("preferred_shape") is not None
                               else arr("a").ravel()[arr("idxs")]),
            "transpose": lambda: np.transpose(arr("a"), axes=term("axes", None)),
            "swapaxes": lambda: np.swapaxes(arr("a"), term("axis1"), term("axis2")),
            "rollaxis": lambda: np.rollaxis(arr("a"), term("axis"), term("start", 0)),
            "Tile": lambda: _tile(arr("a"), term("reps")),
            "Repeat": lambda: _repeat(arr("a"), term("repeats"), term("axis", None)),
            "Roll": lambda: np.roll(arr("a"), term("shift"), term("axis", None)),
            "AtleastNd": lambda: _atleast(arr("x"), term("ndims")),
            "Concatenate": lambda: np.concatenate(
                [arr(t) for t in term("dterms")], axis=term("axis", 0)),
            "add": lambda: _binary(np.add, arr("a"), arr("b")),
            "subtract": lambda: _binary(np.subtract, arr("a"), arr("b")),
            "multiply": lambda: _binary(np.multiply, arr("a"), arr("b")),
            "divide": lambda: _binary(np.divide, arr("x1"), arr("x2")),
            "negative": lambda: np.negative(arr("x")),
            "dot": lambda: _dot(arr("a"), arr("b")),
            "sum": lambda: np.sum(arr("x"), axis=term("axis", None)),
            "mean": lambda: np.mean(arr("x"), axis=term("axis", None)),
            "MatVecMult": lambda: _matvec(arr("mtx"), arr("vec")),
        }
        evaluate = evaluators.get(name)
        if evaluate is None:
            raise self.error(
                key, f"holds a chumpy expression of type {qualified}, which cannot be evaluated "
                "without chumpy; re-save the file with plain numpy arrays")
        try:
            result = np.asarray(evaluate(), dtype=np.float64)
        except ManoFileError:
            raise
        except Exception as exc:
            raise self.error(
                key, f"cannot evaluate chumpy {qualified} ({type(exc).__name__}: {exc})") from None
        return result


def _check_size(shape: Any) -> None:
    if int(np.prod([int(s) for s in shape], dtype=object)) > _MAX_DERIVED_ELEMENTS:
        raise ValueError(f"result of shape {tuple(shape)} would be implausibly large")


def _binary(op: Callable[..., np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _check_size(np.broadcast_shapes(a.shape, b.shape))
    return op(a, b)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.ndim and b.ndim:
        _check_size(a.shape[:-1] + (b.shape[:-2] + b.shape[-1:] if b.ndim > 1 else ()))
    else:
        _check_size(a.shape or b.shape)
    return a.dot(b)


def _tile(a: np.ndarray, reps: Any) -> np.ndarray:
    reps = tuple(int(r) for r in np.atleast_1d(reps))
    _check_size((a.size,) + reps)
    return np.tile(a, reps)


def _repeat(a: np.ndarray, repeats: Any, axis: Any) -> np.ndarray:
    _check_size((a.size, int(np.max(repeats)) if np.size(repeats) else 0))
    return np.repeat(a, repeats, axis)


def _atleast(x: np.ndarray, ndims: int) -> np.ndarray:
    return {1: np.atleast_1d, 2: np.atleast_2d, 3: np.atleast_3d}[int(ndims)](x)


def _matvec(mtx: np.ndarray, vec: np.ndarray) -> np.ndarray:
    _check_size(mtx.shape[:1])
    result = mtx.dot(vec.reshape(-1, 1)).ravel()
    if vec.ndim > 1 and vec.shape[1] > 1:
        result = result.reshape(-1, vec.shape[1])
    return result


def _normalize_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float64, copy=False)
    elif arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            pass  # keep uint64 rather than wrap around
        else:
            arr = arr.astype(np.int64, copy=False)
    return np.require(arr, requirements=["C", "W", "O"])


def _normalize_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _normalize_array(value)
    if isinstance(value, (bool, int, float)) and not isinstance(value, np.ndarray):
        return _normalize_array(np.asarray(value))
    if isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            return value
        if arr.dtype.kind in "fiub":
            return _normalize_array(arr)
    return value


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _not_found_message(path: str) -> str:
    return (f"MANO model file not found: '{path}'. MANO is licence-restricted and not "
            f"bundled with handrecon: register at {MANO_URL}, accept the MANO licence, "
            "download the models archive (mano_v1_2.zip) and pass the path of "
            "models/MANO_RIGHT.pkl from it.")


def read_mano_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Read an official MANO model pickle without chumpy and without running code.

    Args:
        path: path to ``MANO_RIGHT.pkl`` (or another MANO/SMPL-style pickle,
            including the chumpy-free re-saves made by common conversion scripts).

    Returns:
        ``{key: value}`` with every key of the file.  Numeric values (numpy
        arrays, scipy.sparse matrices, chumpy ``Ch`` objects, numbers and numeric
        lists) become C-contiguous writable ``numpy.ndarray``\\ s, floating
        dtypes as float64 and integer dtypes as int64; sparse matrices are
        densified.  Byte/str values (``bs_type``, ``bs_style``) become ``str``.
        Anything else (``None``, non-numeric lists) is passed through unchanged.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message says where MANO
            comes from).
        IsADirectoryError: ``path`` is a directory.
        ManoFileError: the file is not a pickle, is truncated, is not a dict,
            references a global outside the allow-list (the message names it;
            nothing is executed), or holds an object that cannot be turned into
            an array.
    """
    fspath = os.fspath(path)
    shown = str(fspath)
    if os.path.isdir(fspath):
        raise IsADirectoryError(
            f"'{shown}' is a directory; pass the path of the MANO model file itself, "
            f"e.g. '{os.path.join(shown, 'MANO_RIGHT.pkl')}' (MANO comes from {MANO_URL})")
    try:
        fh = open(fspath, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(_not_found_message(shown)) from None
    with fh:
        head = fh.read(4)
        fh.seek(0)
        if head.startswith(b"PK\x03\x04"):
            raise ManoFileError(
                f"{shown}: this is a zip archive, not a MANO pickle; extract it and pass "
                "models/MANO_RIGHT.pkl", path=shown)
        try:
            raw = _RestrictedUnpickler(fh, shown).load()
        except ManoFileError:
            raise
        except _Refusal as exc:
            raise ManoFileError(
                f"{shown}: refusing pickle content: {exc}; nothing in it was executed",
                path=shown) from None
        except RecursionError:
            raise ManoFileError(f"{shown}: pickle nested too deeply", path=shown) from None
        except Exception as exc:  # UnpicklingError, EOFError, ValueError, TypeError, ...
            raise ManoFileError(
                f"{shown}: not a readable MANO model pickle ({type(exc).__name__}: {exc})",
                path=shown) from None

    if not isinstance(raw, dict):
        raise ManoFileError(
            f"{shown}: expected the pickle to hold a dict of model arrays, "
            f"got {type(raw).__name__}", path=shown)

    materializer = _Materializer(shown)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode("latin1") if isinstance(key, bytes) else key
        if not isinstance(name, str):
            raise ManoFileError(f"{shown}: non-string key {name!r} in MANO dict", path=shown)
        out[name] = _normalize_value(materializer.value(value, name))
    return out


def read_restricted_pickle(path: str | os.PathLike, what: str = "annotation pickle") -> Any:
    """Read a dataset annotation pickle (RHD ``anno_*.pickle``, HO3D ``meta/*.pkl``) without running code.

    The same restricted unpickler as :func:`read_mano_pickle`: only numpy arrays and scalars,
    scipy.sparse matrices and plain Python containers can be built; any other global is refused before
    anything is called. Python 2 pickles are read with latin-1 strings.

    Args:
        path: the pickle file.
        what: how to name the file in error messages (e.g. ``"RHD annotation file"``).

    Returns:
        The pickled object with plain types: dicts (``bytes`` keys decoded to ``str``), lists, tuples,
        ``str`` and ``None``; numeric values (arrays, numbers, numpy scalars, numeric lists) become
        C-contiguous writable numpy arrays (floating -> float64, integer -> int64; numbers 0-d).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ManoFileError: the file is not a readable pickle or references a global outside the allow-list
            (the message names the file and the global; nothing was executed).
    """
    fspath = os.fspath(path)
    shown = str(fspath)
    if not os.path.isfile(fspath):
        raise FileNotFoundError(f"{what} not found: '{shown}'")
    with open(fspath, "rb") as fh:
        try:
            raw = _RestrictedUnpickler(fh, shown).load()
        except ManoFileError as exc:
            if exc.global_name is None:
                raise
            raise ManoFileError(
                f"{shown}: refusing to load pickle global '{exc.global_name}': this {what} may only hold "
                "numpy arrays, scipy.sparse matrices and plain Python containers; nothing in it was "
                "executed", path=shown, global_name=exc.global_name) from None
        except _Refusal as exc:
            raise ManoFileError(f"{shown}: refusing pickle content: {exc}; nothing in it was executed",
                                path=shown) from None
        except RecursionError:
            raise ManoFileError(f"{shown}: pickle nested too deeply", path=shown) from None
        except Exception as exc:  # UnpicklingError, EOFError, ValueError, TypeError, ...
            raise ManoFileError(f"{shown}: not a readable {what} ({type(exc).__name__}: {exc})",
                                path=shown) from None
    materializer = _Materializer(shown)

    def plain(obj: Any, depth: int) -> Any:
        if depth > _MAX_CHUMPY_DEPTH:
            raise ManoFileError(f"{shown}: {what} nested too deeply", path=shown)
        if isinstance(obj, dict):
            out = {}
            for key, value in obj.items():
                name = key.decode("latin1") if isinstance(key, bytes) else key
                out[name] = plain(value, depth + 1)
            return out
        if isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, list, tuple, _StandIn)) for v in obj):
            return type(obj)(plain(v, depth + 1) for v in obj)
        if isinstance(obj, _StandIn):
            obj = materializer.value(obj, "<value>")
        elif isinstance(obj, (bytes, bytearray)):
            return bytes(obj).decode("latin1")
        elif isinstance(obj, np.generic):
            obj = np.asarray(obj)
        if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
            obj = materializer.value(obj, "<value>")
        return _normalize_value(obj)

    return plain(raw, 0)


def _shape_str(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def validate_mano(params: Mapping[str, Any], path: str | os.PathLike | None = None
                  ) -> Mapping[str, Any]:
    """Check that ``params`` (from :func:`read_mano_pickle`) is a usable MANO model.

    Required keys and shapes (V vertices, F faces, S shape components)::

        v_template     (V, 3)      float
        f              (F, 3)      integer, every index in [0, V)
        weights        (V, 16)     float
        J_regressor    (16, V)     float
        shapedirs      (V, 3, S)   float, S >= 1
        kintree_table  (2, 16)     integer

    Optional keys, checked when present: ``posedirs`` (V, 3, 135),
    ``hands_components`` (K, 45) with 1 <= K <= 45, ``hands_mean`` (45,).
    Float arrays must be finite.

    Returns ``params`` unchanged so calls can be chained.

    Raises:
        ManoFileError: naming the file, the key and the expected shape.
    """
    shown = "<MANO params>" if path is None else str(os.fspath(path))

    def fail(key: str, message: str) -> ManoFileError:
        return ManoFileError(f"{shown}: MANO key '{key}' {message}", path=path, key=key)

    def get(key: str, expected: str, required: bool = True) -> np.ndarray | None:
        if key not in params:
            if required:
                raise ManoFileError(
                    f"{shown}: MANO file is missing required key '{key}' "
                    f"(expected shape {expected})", path=path, key=key)
            return None
        value = params[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            raise fail(key, f"must be a numeric array of shape {expected}, "
                            f"got {type(value).__name__}"
                            + (f" of dtype {value.dtype}" if isinstance(value, np.ndarray) else ""))
        return value

    def check_shape(key: str, arr: np.ndarray, expected: tuple, text: str) -> None:
        ok = arr.ndim == len(expected) and all(
            e is None or s == e for s, e in zip(arr.shape, expected))
        if not ok:
            raise fail(key, f"has shape {_shape_str(arr.shape)}; expected {text}")

    def check_finite(key: str, arr: np.ndarray) -> None:
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise fail(key, "contains NaN or infinite values")

    J = _NUM_JOINTS
    v_template = get("v_template", "(V, 3)")
    if v_template.ndim != 2 or v_template.shape[1] != 3 or v_template.shape[0] < 1:
        raise fail("v_template", f"has shape {_shape_str(v_template.shape)}; expected (V, 3)")
    V = v_template.shape[0]
    check_finite("v_template", v_template)

    f = get("f", "(F, 3)")
    check_shape("f", f, (None, 3), "(F, 3)")
    if f.dtype.kind not in "iu":
        raise fail("f", f"must hold integer vertex indices, got dtype {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= V):
        raise fail("f", f"has vertex indices outside [0, {V}) (V = {V} from v_template)")

    weights = get("weights", f"(V, {J}) = ({V}, {J})")
    check_shape("weights", weights, (V, J), f"(V, {J}) = ({V}, {J})")
    check_finite("weights", weights)

    jreg = get("J_regressor", f"({J}, V) = ({J}, {V})")
    check_shape("J_regressor", jreg, (J, V), f"({J}, V) = ({J}, {V})")
    check_finite("J_regressor", jreg)

    shapedirs = get("shapedirs", f"(V, 3, S) = ({V}, 3, S) with S >= 1")
    check_shape("shapedirs", shapedirs, (V, 3, None), f"(V, 3, S) = ({V}, 3, S) with S >= 1")
    if shapedirs.shape[2] < 1:
        raise fail("shapedirs", f"has shape {_shape_str(shapedirs.shape)}; "
                                f"expected (V, 3, S) = ({V}, 3, S) with S >= 1")
    check_finite("shapedirs", shapedirs)

    kintree = get("kintree_table", f"(2, {J})")
    check_shape("kintree_table", kintree, (2, J), f"(2, {J})")
    if kintree.dtype.kind not in "iu":
        raise fail("kintree_table", f"must hold integer joint ids, got dtype {kintree.dtype}")

    P = _NUM_POSE_BLENDSHAPES
    posedirs = get("posedirs", f"(V, 3, {P}) = ({V}, 3, {P})", required=False)
    if posedirs is not None:
        check_shape("posedirs", posedirs, (V, 3, P), f"(V, 3, {P}) = ({V}, 3, {P})")
        check_finite("posedirs", posedirs)

    D = 3 * (J - 1)
    comps = get("hands_components", f"(K, {D}) with 1 <= K <= {D}", required=False)
    if comps is not None:
        check_shape("hands_components", comps, (None, D), f"(K, {D}) with 1 <= K <= {D}")
        if not 1 <= comps.shape[0] <= D:
            raise fail("hands_components", f"has shape {_shape_str(comps.shape)}; "
                                            f"expected (K, {D}) with 1 <= K <= {D}")
        check_finite("hands_components", comps)
    mean = get("hands_mean", f"({D},)", required=False)
    if mean is not None:
        check_shape("hands_mean", mean, (D,), f"({D},)")
        check_finite("hands_mean", mean)
    return params
