"""Unit tests of the dlib serialisation reader on small byte strings built here."""

import contextlib
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from data_tools.errors import WeightsFormatError
from model.dlib_format import (
    ConvLayer,
    DlibByteReader,
    FullyConnectedLayer,
    parse_dlib_network,
    read_dlib_network,
)


def _int(value: int) -> bytes:
    """Encode an integer as dlib does: control byte (size | sign), then little-endian bytes."""
    magnitude = abs(value)
    size = max(1, (magnitude.bit_length() + 7) // 8)
    control = size | (0x80 if value < 0 else 0)
    return bytes([control]) + magnitude.to_bytes(size, "little")


def _float(value: float) -> bytes:
    mantissa, exponent = math.frexp(value)
    return _int(int(mantissa * 2**53)) + _int(exponent - 53)


def _string(text: str) -> bytes:
    return _int(len(text)) + text.encode("ascii")


def _tensor(values: NDArray[np.float32]) -> bytes:
    dims = values.reshape((1,) * (4 - values.ndim) + values.shape).shape
    return _int(2) + b"".join(_int(d) for d in dims) + values.astype("<f4").tobytes()


def _alias(*dims: int) -> bytes:
    return _int(1) + b"".join(_int(d) for d in dims)


def _layer_state(sample_expansion: bool = False) -> bytes:
    empty = _tensor(np.zeros((0, 0, 0, 0), dtype=np.float32))
    return b"110" + empty * 3 + (_int(1) if sample_expansion else b"")


def _tiny_network() -> bytes:
    """fc_no_bias<2, relu<tag1<con<2,1,1,1,1, input_rgb_image_sized<150>>>>> with a metric loss."""
    conv_params = np.array([1, 2, 3, 4, 5, 6, 0.5, -0.5], dtype=np.float32)
    conv = (
        _string("con_4")
        + _tensor(conv_params)
        + b"".join(_int(v) for v in (2, 1, 1, 1, 1, 0, 0))
        + _alias(2, 3, 1, 1)
        + _alias(1, 2, 1, 1)
        + _float(1.0) * 2
        + _float(1.0)
        + _float(0.0)
    )
    fc = (
        _string("fc_2")
        + _int(2)
        + _int(2)
        + _tensor(np.array([[1, 2], [3, 4]], dtype=np.float32))
        + _alias(2, 2, 1, 1)
        + _alias(0, 0, 0, 0)
        + _int(1)
        + _float(1.0) * 4
    )
    input_layer = (
        _string("input_rgb_image_sized")
        + _float(122.75)
        + _float(117.0)
        + _float(104.25)
        + _int(150)
        + _int(150)
    )
    return (
        _int(1)
        + _string("loss_metric_2")
        + _float(0.04)
        + _float(0.6)
        + _int(2)  # fc wrapper
        + _int(2)  # relu wrapper
        + _int(1)  # tag wrapper
        + _int(3)  # the wrapper over the input layer
        + input_layer
        + conv
        + _layer_state(sample_expansion=True)
        + _string("relu_")
        + _layer_state()
        + fc
        + _layer_state()
    )


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (b"\x01\x00", 0),
        (b"\x01\x02", 2),
        (b"\x02\x2c\x01", 300),
        (b"\x81\x05", -5),
        (b"\x08" + (2**63 - 1).to_bytes(8, "little"), 2**63 - 1),
    ],
)
def test_read_int_decodes_size_sign_and_little_endian_bytes(encoded: bytes, expected: int) -> None:
    reader = DlibByteReader(encoded)

    value = reader.read_int()

    assert value == expected
    assert reader.remaining == 0


def test_read_int_rejects_reserved_bits_in_control_byte() -> None:
    reader = DlibByteReader(b"\x31\x00")

    with pytest.raises(WeightsFormatError, match="cannot start"):
        reader.read_int()


def test_read_string_reads_length_prefixed_ascii() -> None:
    reader = DlibByteReader(_string("relu_") + b"rest")

    name = reader.read_string()

    assert name == "relu_"
    assert reader.remaining == 4


def test_read_float_combines_mantissa_and_power_of_two_exponent() -> None:
    # 0.6 as dlib wrote it in the face model: mantissa 0x99999a, exponent -24.
    reader = DlibByteReader(b"\x03\x9a\x99\x99\x81\x18" + _int(0) + _int(32000))

    value = reader.read_float()
    infinity = reader.read_float()

    assert value == pytest.approx(0.6, abs=1e-7)
    assert infinity == math.inf


def test_read_bool_takes_ascii_digits_only() -> None:
    reader = DlibByteReader(b"10\x01")

    flags = (reader.read_bool(), reader.read_bool())

    assert flags == (True, False)
    with pytest.raises(WeightsFormatError, match="'0' or '1'"):
        reader.read_bool()


def test_read_tensor_returns_little_endian_float32_in_four_dimensions() -> None:
    values = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1) - 2.5
    reader = DlibByteReader(_tensor(values))

    tensor = reader.read_tensor()

    assert tensor.dtype == np.float32
    assert tensor.shape == (1, 2, 3, 1)
    np.testing.assert_array_equal(tensor, values)


def test_truncated_tensor_raises_weights_format_error_with_offset() -> None:
    blob = _tensor(np.ones((2, 2), dtype=np.float32))[:-3]

    with pytest.raises(WeightsFormatError, match=r"input ends inside .* at byte \d+ of"):
        DlibByteReader(blob, source="tiny.dat").read_tensor()


def test_parse_network_lists_layers_from_input_to_output() -> None:
    network = parse_dlib_network(_tiny_network())

    kinds = [layer.kind for layer in network.layers]
    conv, fc = network.layers[0], network.layers[3]

    assert kinds == ["con", "tag_or_skip", "relu", "fc"]
    assert network.input_layer.mean_rgb == (122.75, 117.0, 104.25)
    assert (network.input_layer.rows, network.input_layer.cols) == (150, 150)
    assert network.loss.distance_threshold == pytest.approx(0.6)
    assert isinstance(conv, ConvLayer)
    assert conv.weights.shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(conv.weights.reshape(-1), [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(conv.biases, [0.5, -0.5])
    assert isinstance(fc, FullyConnectedLayer)
    assert fc.biases is None
    np.testing.assert_array_equal(fc.weights, [[1, 2], [3, 4]])


def test_every_truncation_of_a_network_raises_weights_format_error() -> None:
    blob = _tiny_network()

    for length in range(len(blob)):
        with pytest.raises(WeightsFormatError):
            parse_dlib_network(blob[:length])


@pytest.mark.parametrize("replacement", [0x00, 0x7F, 0xFF])
def test_corrupt_byte_anywhere_parses_or_raises_weights_format_error(replacement: int) -> None:
    blob = _tiny_network()

    for offset in range(len(blob)):
        corrupt = blob[:offset] + bytes([replacement]) + blob[offset + 1 :]
        with contextlib.suppress(WeightsFormatError):
            parse_dlib_network(corrupt)


def test_trailing_bytes_after_network_are_rejected() -> None:
    with pytest.raises(WeightsFormatError, match="follow the end"):
        parse_dlib_network(_tiny_network() + b"\x00")


def test_unknown_layer_name_is_reported() -> None:
    blob = _tiny_network().replace(_string("relu_"), _string("gelu_"))

    with pytest.raises(WeightsFormatError, match="'gelu_' is not supported"):
        parse_dlib_network(blob)


def test_missing_file_raises_weights_format_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsFormatError, match="cannot read dlib weights"):
        read_dlib_network(tmp_path / "absent.dat")
