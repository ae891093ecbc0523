"""ONNX ``metadata_props`` read without the ``onnx`` package or an inference session (QGIS-free).

The top-level protobuf fields of the file are walked and the graph is skipped with a seek, so listing
many large models stays fast; a truncated or non-ONNX file raises :class:`~.errors.ModelError`.
Model cards (:mod:`.model_card`) are stored under the key ``model_card``.
"""
import os

from ..errors import ModelError


def _read_varint(f):
    result, shift = 0, 0
    while True:
        b = f.read(1)
        if not b:
            raise EOFError
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _parse_entry(data):
    """Parse a StringStringEntryProto (key = field 1, value = field 2)."""
    import io

    key, value = "", ""
    f = io.BytesIO(data)
    end = len(data)
    while f.tell() < end:
        tag = _read_varint(f)
        field, wire = tag >> 3, tag & 7
        if wire == 2:
            length = _read_varint(f)
            chunk = f.read(length)
            if len(chunk) != length:
                raise EOFError
            if field == 1:
                key = chunk.decode("utf-8", "replace")
            elif field == 2:
                value = chunk.decode("utf-8", "replace")
        elif wire == 0:
            _read_varint(f)
        else:
            raise ValueError(f"unexpected wire type {wire} in metadata entry")
    return key, value


def read_onnx_metadata(path, parameter="model"):
    """``metadata_props`` of an ONNX file as a dict, read by walking the top-level protobuf fields
    (the graph is skipped with a seek, so this is fast for large models and needs neither the
    ``onnx`` package nor an inference session). A truncated or non-ONNX file raises ModelError."""
    path = str(path)
    if not os.path.isfile(path):  # FIFOs and devices would block or never end
        raise ModelError(f"{path} is not a regular model file.", parameter)
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as exc:
        raise ModelError(f"cannot read model file {path} ({exc.strerror or exc}).", parameter) from None
    meta = {}
    seen_graph = False
    try:
        with f:
            while f.tell() < size:
                tag = _read_varint(f)
                field, wire = tag >> 3, tag & 7
                if field == 0:
                    raise ValueError("field number 0")
                if wire == 0:
                    _read_varint(f)
                elif wire == 1:
                    f.seek(8, 1)
                elif wire == 5:
                    f.seek(4, 1)
                elif wire == 2:
                    length = _read_varint(f)
                    if f.tell() + length > size:
                        raise EOFError
                    if field == 14:
                        k, v = _parse_entry(f.read(length))
                        meta[k] = v
                    else:
                        if field == 7:
                            seen_graph = True
                        f.seek(length, 1)
                else:
                    raise ValueError(f"unexpected wire type {wire}")
            if f.tell() != size:
                raise EOFError
    except EOFError:
        raise ModelError(f"{path} is truncated or corrupt (the ONNX protobuf ends early); "
                         "download or export the model again.", parameter) from None
    except ValueError as exc:
        raise ModelError(f"{path} is not an ONNX model ({exc}).", parameter) from None
    if not seen_graph:
        raise ModelError(f"{path} is not an ONNX model (no graph found).", parameter)
    return meta
