#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

Run by hand from the repository root when a target changes; the files are
committed. Each seed is small: a valid file of each kind the reader knows and a
few near misses, so that fuzzing starts from every branch of the format.
"""
import gzip
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_seeds():
    seeds = {
        "u8_1d": idx(0x08, [5], bytes([0, 1, 2, 254, 255])),
        "u8_images": idx(0x08, [2, 3, 3], bytes(range(18))),
        "u8_empty": idx(0x08, [0, 28, 28], b""),
        "i8": idx(0x09, [4], bytes([0, 127, 128, 255])),
        "i16": idx(0x0B, [2, 2], struct.pack(">4h", 0, -1, 32767, -32768)),
        "i32": idx(0x0C, [3], struct.pack(">3i", 7, -7, 2147483647)),
        "f32": idx(0x0D, [2], struct.pack(">2f", 1.5, float("nan"))),
        "f64": idx(0x0E, [1, 2], struct.pack(">2d", -0.0, 1e308)),
        "truncated": idx(0x08, [10], bytes(4)),
        "trailing": idx(0x08, [2], bytes(4)),
        "bad_magic": b"\x01\x00\x08\x01\x00\x00\x00\x01\x00",
        "bad_type": idx(0x0A, [1], b"\x00"),
        "eight_dims": idx(0x08, [1] * 8, b"\x2a"),
        "huge_claim": idx(0x08, [60000, 60000, 60000], bytes(8)),
    }
    for name, data in seeds.items():
        put("idx", name, data)
        put("idx_gz", name, data)
    # the plain target also sees gzip streams, whole and cut
    put("idx", "gz_u8_images", gzip.compress(seeds["u8_images"], mtime=0))
    put("idx", "gz_cut", gzip.compress(seeds["i32"], mtime=0)[:20])


def safetensors(entries, data, meta=None, pad=True, raw_header=None):
    header = {}
    if meta is not None:
        header["__metadata__"] = meta
    header.update(entries)
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_seeds():
    f32 = struct.pack("<3f", 1.0, -2.5, float("inf"))
    put("safetensors", "f32", safetensors({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}, f32))
    put("safetensors", "all_dtypes", safetensors({
        "a": {"dtype": "F64", "shape": [1, 1], "data_offsets": [0, 8]},
        "b": {"dtype": "I64", "shape": [], "data_offsets": [8, 16]},
        "c": {"dtype": "U8", "shape": [2], "data_offsets": [16, 18]},
        "d": {"dtype": "BOOL", "shape": [2], "data_offsets": [18, 20]},
        "e": {"dtype": "F32", "shape": [0, 4], "data_offsets": [20, 20]},
    }, struct.pack("<d", 3.25) + struct.pack("<q", -(2 ** 62)) + bytes([7, 250, 0, 1]), meta={"k": "v"}))
    put("safetensors", "empty", safetensors({}, b""))
    put("safetensors", "metadata_only", safetensors({}, b"", meta={"framework": "pt", "x": ""}))
    put("safetensors", "unsorted", safetensors({
        "z": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]},
        "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
    }, bytes(4)))
    put("safetensors", "overflow", safetensors({"w": {"dtype": "F32", "shape": [2147483648, 2147483648],
                                                      "data_offsets": [0, 0]}}, b""))
    put("safetensors", "overlap", safetensors({
        "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, bytes(6)))
    dup = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    put("safetensors", "duplicate_key", safetensors({}, bytes(2), raw_header=dup))
    put("safetensors", "junk_after_json", safetensors({}, b"", raw_header=b'{} x'))
    put("safetensors", "escapes", safetensors({}, b"", raw_header=b'{"__metadata__":{"\\u00e9\\n":"\\ud83d\\ude00"}}'))
    with open(os.path.join(os.path.dirname(ROOT), "..", "fixtures", "safetensors_ref.safetensors"), "rb") as f:
        put("safetensors", "pytorch_ref", f.read())


def csv_seeds():
    put("metrics_csv", "lightning",
        b"epoch,step,train_loss,val_acc,val_loss\n"
        b"0,49,0.0821,,\n0,99,0.05,,\n0,468,,0.91,0.0117\n1,937,,0.94,0.0087\n")
    put("metrics_csv", "quoted", b'epoch,"a,b","say ""hi""",step\n0,1.5,"x\ny",3\n')
    put("metrics_csv", "crlf_blank", b"epoch,step,loss\r\n\r\n0,1,nan\r\n1,2,inf\r\n2,3,-inf\r\n")
    put("metrics_csv", "strings", b"epoch,step,note\n0,1,hello\nx,2,3\n")
    put("metrics_csv", "unterminated", b'epoch,step,loss\n0,1,"0.5\n')
    put("metrics_csv", "ragged", b"epoch,step,loss\n0,1\n")
    put("metrics_csv", "big_steps", b"epoch,step,loss\n0,100000000000000000,1\n0,100000000000000001,2\n")
    put("metrics_csv", "header_only", b"epoch,step,loss\n")


def tensor_seeds():
    # bytes for the generator of fuzz_tensor_table.c: mode, dtype, then values
    put("tensor_table", "int64_big", bytes([0, 3, 6, 2, 3, 12, 3, 13]))
    put("tensor_table", "nested", bytes([0, 1, 7, 2, 6, 2, 1, 5, 1, 7, 6, 2, 1, 9, 1, 250]))
    put("tensor_table", "ragged", bytes([0, 2, 8, 2, 6, 1, 1, 1, 6, 2, 1, 1, 1, 2]))
    put("tensor_table", "lying_len", bytes([0, 0, 10, 0] + [0x7f] * 8 + [1, 3]))
    put("tensor_table", "full_u8", bytes([1, 4, 6, 2, 1, 3, 1, 4, 1, 0]))
    put("tensor_table", "zeros_neg", bytes([2, 0, 6, 1, 1, 0xff]))
    put("tensor_table", "nan_int", bytes([0, 3, 6, 1, 3, 10]))
    put("tensor_table", "tensor_in_table", bytes([0, 0, 6, 2, 11, 2, 11, 2]))


if __name__ == "__main__":
    idx_seeds()
    st_seeds()
    csv_seeds()
    tensor_seeds()
