"""Tests for handrecon.hand.mano: the safe, chumpy-free MANO pickle reader."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

# pytest's default "prepend" import mode puts this folder on sys.path.
from mano_fixture import (
    MALICIOUS_KINDS,
    dump_mimic,
    fake_ch,
    fake_chumpy_node,
    random_mano_arrays,
    write_malicious_pickle,
    write_mano_pickle,
)

from handrecon.hand import mano
from handrecon.hand.mano import (
    MANO_FINGERTIP_VERTICES,
    ManoFileError,
    read_mano_pickle,
    validate_mano,
)

N_VERTS, N_FACES, N_JOINTS, N_SHAPES = 778, 1538, 16, 10


@pytest.fixture(scope="module")
def arrays():
    return random_mano_arrays(seed=1234)


@pytest.fixture
def mano_file(tmp_path, arrays):
    path = tmp_path / "MANO_RIGHT.pkl"
    expected = write_mano_pickle(path, **arrays)
    return path, expected


def _assert_same(loaded, expected):
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        if isinstance(value, str):
            assert loaded[key] == value, key
        else:
            np.testing.assert_array_equal(loaded[key], value, err_msg=key)


# --------------------------------------------------------------------------
# Module surface
# --------------------------------------------------------------------------


def test_public_api():
    assert mano.__all__ == ["read_mano_pickle", "read_restricted_pickle", "validate_mano", "ManoFileError",
                            "MANO_FINGERTIP_VERTICES"]
    assert MANO_FINGERTIP_VERTICES == (744, 320, 443, 555, 672)
    assert issubclass(ManoFileError, ValueError)
    assert mano.__doc__ and "chumpy" in mano.__doc__


def test_chumpy_is_not_installed():
    # The whole point: the official file loads without chumpy.
    assert importlib.util.find_spec("chumpy") is None


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------


def test_round_trip_official_layout(mano_file, arrays):
    path, expected = mano_file
    loaded = read_mano_pickle(path)
    _assert_same(loaded, expected)

    assert loaded["v_template"].shape == (N_VERTS, 3)
    assert loaded["f"].shape == (N_FACES, 3)
    assert loaded["weights"].shape == (N_VERTS, N_JOINTS)
    assert loaded["J_regressor"].shape == (N_JOINTS, N_VERTS)
    assert loaded["shapedirs"].shape == (N_VERTS, 3, N_SHAPES)
    assert loaded["posedirs"].shape == (N_VERTS, 3, 135)
    assert loaded["kintree_table"].shape == (2, N_JOINTS)

    for key in ("v_template", "weights", "J_regressor", "shapedirs", "posedirs",
                "hands_components", "hands_mean"):
        assert loaded[key].dtype == np.float64, key
    assert loaded["f"].dtype == np.int64  # uint32 on disk
    assert loaded["kintree_table"].dtype == np.int64
    np.testing.assert_array_equal(loaded["f"], arrays["faces"])
    assert loaded["kintree_table"][0, 0] == 2**32 - 1  # official root marker, kept as is
    assert loaded["bs_type"] == "lrotmin" and loaded["bs_style"] == "lbs"

    for key, value in loaded.items():
        if isinstance(value, np.ndarray):
            assert value.flags.c_contiguous and value.flags.writeable, key
    assert not any(sp.issparse(v) for v in loaded.values())
    assert validate_mano(loaded, path) is loaded


def test_chumpy_field_loads_without_chumpy(mano_file, arrays):
    path, _ = mano_file
    assert b"chumpy.ch\nCh\n" in path.read_bytes()  # really stored as a chumpy object
    loaded = read_mano_pickle(path)
    assert type(loaded["shapedirs"]) is np.ndarray
    np.testing.assert_array_equal(loaded["shapedirs"], arrays["shapedirs"])
    assert importlib.util.find_spec("chumpy") is None
    assert not any(name == "chumpy" or name.startswith("chumpy.") for name in sys.modules)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_round_trip_all_protocols(tmp_path, arrays, protocol):
    path = tmp_path / f"mano_p{protocol}.pkl"
    expected = write_mano_pickle(path, **arrays, protocol=protocol,
                                 ch_keys=("shapedirs", "weights", "posedirs"))
    _assert_same(read_mano_pickle(path), expected)


def test_legacy_scipy_module_path(tmp_path, arrays):
    path = tmp_path / "legacy.pkl"
    expected = write_mano_pickle(path, **arrays, legacy_sparse=True)
    assert b"scipy.sparse.csc\ncsc_matrix\n" in path.read_bytes()
    _assert_same(read_mano_pickle(path), expected)


def test_plain_python3_resave_loads(tmp_path, arrays):
    # What chumpy-removal scripts produce: plain numpy + scipy, newest protocol.
    data = {"v_template": arrays["v_template"].astype(np.float32),
            "f": arrays["faces"].astype(np.int32),
            "J_regressor": sp.csr_matrix(arrays["J_regressor"]),
            "shapedirs": arrays["shapedirs"], "weights": arrays["weights"],
            "kintree_table": np.zeros((2, 16), np.int64), "bs_type": "lrotmin",
            "pose_scale": 1.5, "misc": None}
    path = tmp_path / "py3.pkl"
    path.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    loaded = read_mano_pickle(path)
    assert loaded["v_template"].dtype == np.float64 and loaded["f"].dtype == np.int64
    np.testing.assert_allclose(loaded["J_regressor"], arrays["J_regressor"])
    np.testing.assert_array_equal(loaded["f"], arrays["faces"])
    assert loaded["pose_scale"].shape == () and float(loaded["pose_scale"]) == 1.5
    assert loaded["misc"] is None
    validate_mano(loaded, path)


def test_nested_ch_and_reordering_nodes(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 3, 2))
    idxs = np.array([5, 0, 7, 3])
    jreg = rng.random((2, 4))
    extra = {
        # Ch whose x is itself a Ch
        "nested": fake_ch(fake_ch(base)),
        "select": fake_chumpy_node("chumpy.reordering", "Select", a=fake_ch(base),
                                   idxs=idxs, preferred_shape=(2, 2)),
        "reshape": fake_chumpy_node("chumpy.reordering", "Reshape",
                                    a=fake_ch(fake_ch(base)), newshape=(8, 3)),
        "transposed": fake_chumpy_node("chumpy.reordering", "transpose", a=fake_ch(base),
                                       axes=(2, 0, 1)),
        "summed": fake_chumpy_node("chumpy.ch_ops", "add", a=fake_ch(base), b=base),
        # how SMPL-style code regresses joints: MatVecMult(J_regressor, v[:, 0])
        "J": fake_chumpy_node("chumpy.ch", "MatVecMult", mtx=sp.csc_matrix(jreg),
                              vec=fake_ch(base[:, 0, 0])),
    }
    path = tmp_path / "nodes.pkl"
    dump_mimic(extra, path)
    loaded = read_mano_pickle(path)
    np.testing.assert_array_equal(loaded["nested"], base)
    np.testing.assert_array_equal(loaded["select"], base.ravel()[idxs].reshape(2, 2))
    np.testing.assert_array_equal(loaded["reshape"], base.reshape(8, 3))
    np.testing.assert_array_equal(loaded["transposed"], base.transpose(2, 0, 1))
    np.testing.assert_array_equal(loaded["summed"], 2 * base)
    np.testing.assert_allclose(loaded["J"], jreg @ base[:, 0, 0])


def test_unsupported_chumpy_node_names_the_key(tmp_path):
    path = tmp_path / "odd.pkl"
    dump_mimic({"weird": fake_chumpy_node("chumpy.ch_ops", "cumsum", a=fake_ch(np.ones(3)))},
               path)
    with pytest.raises(ManoFileError, match=r"'weird'.*chumpy\.ch_ops\.cumsum") as info:
        read_mano_pickle(path)
    assert info.value.key == "weird"


# --------------------------------------------------------------------------
# Refusing malicious pickles
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, kind):
    path = tmp_path / "MANO_RIGHT.pkl"
    canary = tmp_path / "canary"
    refused = write_malicious_pickle(path, canary, kind)
    with pytest.raises(ManoFileError) as info:
        read_mano_pickle(path)
    message = str(info.value)
    assert refused in message
    assert str(path) in message
    assert not canary.exists()
    if kind != "reconstructor":
        assert info.value.global_name == refused


@pytest.mark.parametrize("kind", ["builtins.eval", "__builtin__.eval"])
def test_canary_payload_is_real(tmp_path, kind):
    # Control: an unrestricted pickle.load does run the payload (pure Python,
    # no shell), so the canary assertions above are meaningful.
    path = tmp_path / "evil.pkl"
    canary = tmp_path / "canary"
    write_malicious_pickle(path, canary, kind)
    with open(path, "rb") as fh:
        pickle.load(fh, encoding="latin1")
    assert canary.exists()


def test_build_on_allowed_callable_is_refused(tmp_path):
    # GLOBAL numpy.dtype, then BUILD {'x': 1} on it: must not mutate our helpers.
    path = tmp_path / "build.pkl"
    path.write_bytes(b"\x80\x02cnumpy\ndtype\n}X\x01\x00\x00\x00xK\x01sb.")
    with pytest.raises(ManoFileError, match="numpy.dtype"):
        read_mano_pickle(path)


def test_persistent_id_is_refused(tmp_path):
    path = tmp_path / "pid.pkl"
    path.write_bytes(b"\x80\x02X\x03\x00\x00\x00abcQ.")
    with pytest.raises(ManoFileError, match="persistent"):
        read_mano_pickle(path)


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["v_template", "f", "weights", "J_regressor", "shapedirs",
                                 "kintree_table"])
def test_missing_required_key(tmp_path, arrays, key):
    path = tmp_path / "missing.pkl"
    write_mano_pickle(path, **arrays, omit=[key])
    params = read_mano_pickle(path)
    assert key not in params
    with pytest.raises(ManoFileError, match=rf"missing required key '{key}'") as info:
        validate_mano(params, path)
    assert str(path) in str(info.value)
    assert "expected shape" in str(info.value)
    assert info.value.key == key


def test_optional_keys_may_be_missing(tmp_path, arrays):
    path = tmp_path / "minimal.pkl"
    write_mano_pickle(path, **arrays, omit=["posedirs", "hands_components", "hands_coeffs",
                                            "hands_mean"])
    validate_mano(read_mano_pickle(path), path)


def _bad(arrays, key):
    rng = np.random.default_rng(7)
    return {
        "v_template": ("v_template", rng.normal(size=(N_VERTS, 2)), r"\(V, 3\)"),
        "faces": ("f", np.zeros((N_FACES, 4), np.int64), r"\(F, 3\)"),
        "weights": ("weights", rng.random((N_VERTS, 15)), r"\(778, 16\)"),
        "J_regressor": ("J_regressor", rng.random((N_VERTS, 16)), r"\(16, 778\)"),
        "shapedirs": ("shapedirs", rng.normal(size=(N_VERTS, 3)), r"\(778, 3, S\)"),
        "posedirs": ("posedirs", rng.normal(size=(N_VERTS, 3, 10)), r"\(778, 3, 135\)"),
        "kintree_table": ("kintree_table", np.zeros((2, 15), np.int64), r"\(2, 16\)"),
    }[key]


@pytest.mark.parametrize("arg", ["v_template", "faces", "weights", "J_regressor", "shapedirs",
                                 "posedirs", "kintree_table"])
def test_wrong_shape_names_key_and_expected_shape(tmp_path, arrays, arg):
    key, bad_value, expected_shape = _bad(arrays, arg)
    path = tmp_path / "bad.pkl"
    write_mano_pickle(path, **{**arrays, arg: bad_value})
    with pytest.raises(ManoFileError, match=rf"'{key}'.*expected.*{expected_shape}") as info:
        validate_mano(read_mano_pickle(path), path)
    assert str(path) in str(info.value)
    assert info.value.key == key


def test_face_index_out_of_range(tmp_path, arrays):
    faces = arrays["faces"].copy()
    faces[3, 1] = N_VERTS
    path = tmp_path / "faces.pkl"
    write_mano_pickle(path, **{**arrays, "faces": faces})
    with pytest.raises(ManoFileError, match=r"'f'.*outside \[0, 778\)"):
        validate_mano(read_mano_pickle(path), path)


def test_string_where_array_expected(tmp_path, arrays):
    path = tmp_path / "str.pkl"
    write_mano_pickle(path, **arrays, extra={"weights": "oops"})
    with pytest.raises(ManoFileError, match="'weights'.*numeric array"):
        validate_mano(read_mano_pickle(path), path)


def test_non_finite_values(tmp_path, arrays):
    v = arrays["v_template"].copy()
    v[0, 0] = np.nan
    path = tmp_path / "nan.pkl"
    write_mano_pickle(path, **{**arrays, "v_template": v})
    with pytest.raises(ManoFileError, match="'v_template'.*NaN"):
        validate_mano(read_mano_pickle(path), path)


# --------------------------------------------------------------------------
# Not a pickle / not there
# --------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"this is not a pickle\n", b"", b"\x80\x02}q\x00(X"],
                         ids=["text", "empty", "truncated"])
def test_non_pickle_file(tmp_path, content):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(content)
    with pytest.raises(ManoFileError, match="not a readable MANO model pickle") as info:
        read_mano_pickle(path)
    assert str(path) in str(info.value)


def test_zip_archive_gets_a_hint(tmp_path):
    path = tmp_path / "mano_v1_2.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mano_v1_2/models/MANO_RIGHT.pkl", b"x")
    with pytest.raises(ManoFileError, match="zip archive"):
        read_mano_pickle(path)


def test_pickle_of_wrong_type(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(ManoFileError, match="expected the pickle to hold a dict"):
        read_mano_pickle(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "MANO_RIGHT.pkl"
    with pytest.raises(FileNotFoundError) as info:
        read_mano_pickle(path)
    message = str(info.value)
    assert str(path) in message
    assert "https://mano.is.tue.mpg.de" in message
    assert "licence" in message


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="MANO_RIGHT.pkl"):
        read_mano_pickle(tmp_path)
