"""Splitting, batching, JSONPath filters, joins and settings of batch transform (no server)."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import pytest

from byoc.errors import (
    DataProcessingError,
    InputError,
    JsonPathError,
    ParameterError,
    RecordTooLargeError,
    SplitError,
)
from byoc.transform import jsonpath
from byoc.transform.batch import MIB, batches, line_batches
from byoc.transform.dataprocessing import DataProcessing
from byoc.transform.inputs import check_output_dir, list_inputs
from byoc.transform.params import TransformParams, resolve
from byoc.transform.split import Record, split


def records(data: bytes, split_type: str) -> list[Record]:
    return list(split(io.BytesIO(data), split_type))


# -- framing written from the specifications, independently of byoc's code ----------------------

def recordio(payload: bytes, cflag: int = 0) -> bytes:
    """MXNet RecordIO: magic 0xCED7230A, (cflag << 29) | length, payload, zero pad to 4."""
    return (struct.pack("<II", 0xCED7230A, (cflag << 29) | len(payload)) + payload
            + b"\0" * (-len(payload) % 4))


def crc32c(data: bytes) -> int:
    """Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked(crc32c(length))) + data
            + struct.pack("<I", masked(crc32c(data))))


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


# -- split ---------------------------------------------------------------------------------------

def test_line_split_keeps_terminators_and_a_last_line_without_one() -> None:
    found = records(b"a,1\nb,2\r\n\nc,3", "Line")
    assert [r.payload for r in found] == [b"a,1\n", b"b,2\r\n", b"\n", b"c,3"]
    assert [r.framed for r in found] == [r.payload for r in found]
    assert [r.index for r in found] == [1, 2, 3, 4]
    assert [r.offset for r in found] == [0, 4, 9, 10]


def test_none_split_is_the_whole_file_even_binary() -> None:
    data = bytes(range(256)) * 3
    assert records(data, "None") == [Record(data, data, 1, 0)]


def test_recordio_matches_the_documented_bytes() -> None:
    assert recordio(b"1") == bytes.fromhex("0a23d7ce0100000031000000")
    assert recordio(b"abcd") == bytes.fromhex("0a23d7ce0400000061626364")


def test_recordio_single_record_is_bare_and_multi_record_keeps_framing() -> None:
    data = recordio(b"1") + recordio(b"abcd") + recordio(b"")
    found = records(data, "RecordIO")
    assert [r.payload for r in found] == [b"1", b"abcd", b""]
    assert b"".join(r.framed for r in found) == data
    assert [r.offset for r in found] == [0, 12, 24]


def test_recordio_multipart_record_is_one_record() -> None:
    data = recordio(b"he", 1) + recordio(b"ll", 2) + recordio(b"o", 3) + recordio(b"!")
    found = records(data, "RecordIO")
    assert [r.payload for r in found] == [b"hello", b"!"]
    assert found[0].framed == data[:len(data) - 12]


@pytest.mark.parametrize(("data", "message"), [
    (b"\x00\x01\x02\x03\x04\x05\x06\x07", "no RecordIO magic number at byte 0"),
    (recordio(b"ok") + b"\x0a\x23", "truncated RecordIO header at byte 12"),
    (recordio(b"abcdef")[:10], "truncated RecordIO record at byte 0"),
    (recordio(b"x", 2), "part flag 2"),
    (recordio(b"x", 1) + recordio(b"y", 0), "part flag 0"),
])
def test_recordio_refuses_bad_framing(data: bytes, message: str) -> None:
    with pytest.raises(SplitError, match=message):
        records(data, "RecordIO")


def test_tfrecord_single_record_is_bare_and_multi_record_keeps_framing() -> None:
    data = tfrecord(b"first") + tfrecord(b"") + tfrecord(bytes(range(200)))
    found = records(data, "TFRecord")
    assert [r.payload for r in found] == [b"first", b"", bytes(range(200))]
    assert b"".join(r.framed for r in found) == data
    assert [r.offset for r in found] == [0, 21, 37]


def test_tfrecord_refuses_bad_checksums_and_truncation() -> None:
    good = tfrecord(b"payload")
    bad_data = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(SplitError, match="data checksum mismatch in the record at byte 0"):
        records(bad_data, "TFRecord")
    bad_length = good[:8] + bytes([good[8] ^ 1]) + good[9:]
    with pytest.raises(SplitError, match="length checksum mismatch at byte 0"):
        records(bad_length, "TFRecord")
    with pytest.raises(SplitError, match="truncated TFRecord record at byte 23"):
        records(good + good[:-3], "TFRecord")
    with pytest.raises(SplitError, match="truncated TFRecord header"):
        records(good + good[:5], "TFRecord")


def test_unknown_split_type() -> None:
    with pytest.raises(ValueError, match="unknown SplitType"):
        records(b"x", "Lines")


# -- batch ---------------------------------------------------------------------------------------

def test_multi_record_packs_whole_records_up_to_the_limit_in_bytes() -> None:
    line = b"x" * (MIB // 4 - 1) + b"\n"  # four lines are exactly 1 MiB
    found = list(batches(records(line * 9, "Line"), "MultiRecord", 1))
    assert [len(b.records) for b in found] == [4, 4, 1]
    assert [len(b.body) for b in found] == [MIB, MIB, MIB // 4]
    assert [(b.first, b.last) for b in found] == [(1, 4), (5, 8), (9, 9)]
    assert found[1].where() == f"records 5-8 (from byte {MIB})"


def test_single_record_sends_each_record_bare() -> None:
    data = recordio(b"one") + recordio(b"two")
    found = list(batches(records(data, "RecordIO"), "SingleRecord", 6))
    assert [b.body for b in found] == [b"one", b"two"]
    assert found[1].where() == "record 2 (from byte 12)"


def test_multi_record_with_binary_framing_sends_the_frames() -> None:
    data = tfrecord(b"a") + tfrecord(b"b")
    (batch,) = batches(records(data, "TFRecord"), "MultiRecord", 6)
    assert batch.body == data


def test_a_record_over_the_limit_is_refused_with_the_reason() -> None:
    data = b"small\n" + b"y" * (MIB + 1) + b"\n"
    for strategy in ("MultiRecord", "SingleRecord"):
        with pytest.raises(RecordTooLargeError, match=r"record 2 \(byte 6\) is 1048578 bytes, more than"
                                                      r" MaxPayloadInMB allows \(1048576 bytes\)"):
            list(batches(records(data, "Line"), strategy, 1))


def test_zero_means_no_limit() -> None:
    data = b"z" * (2 * MIB) + b"\n" + b"w\n"
    (batch,) = batches(records(data, "Line"), "MultiRecord", 0)
    assert len(batch.records) == 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_line_batches_cut_the_same_bodies_as_record_batches(seed: int) -> None:
    chooser = random.Random(seed)
    lines = [b"r" * chooser.choice([0, 1, 10, 70_000, 400_000]) + b"\n" for _ in range(40)]
    data = b"".join(lines) + (b"tail without newline" if seed % 2 else b"")
    for limit in (1, 2, 0):
        fast = list(line_batches(io.BytesIO(data), limit))
        slow = list(batches(records(data, "Line"), "MultiRecord", limit))
        assert [(b.body, b.first, b.count, b.offset, b.size) for b in fast] == \
            [(b.body, b.first, b.count, b.offset, b.size) for b in slow]
        assert b"".join(b.body for b in fast) == data


def test_line_batches_refuse_a_line_over_the_limit() -> None:
    data = b"ok\n" + b"y" * (MIB + 5) + b"\nmore\n"
    with pytest.raises(RecordTooLargeError, match=r"record 2 \(byte 3\) is 1048582 bytes"):
        list(line_batches(io.BytesIO(data), 1))
    assert list(line_batches(io.BytesIO(b""), 1)) == []


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown BatchStrategy"):
        list(batches(records(b"a\n", "Line"), "Multi", 6))


# -- JSONPath ------------------------------------------------------------------------------------

DOC = {"id": 7, "features": [1, 2, 3], "meta": {"a": 1, "b": 2}, "odd-name": "x"}


@pytest.mark.parametrize(("path", "expected"), [
    ("$", DOC),
    ("$.id", 7),
    ("$.features", [1, 2, 3]),
    ("$.features[0]", 1),
    ("$.features[-1]", 3),
    ("$.features[0,-1]", [1, 3]),
    ("$.features[1:]", [2, 3]),
    ("$.features[:2]", [1, 2]),
    ("$.features[-2:]", [2, 3]),
    ("$.features[*]", [1, 2, 3]),
    ("$.meta.*", [1, 2]),
    ("$['id','features']", [7, [1, 2, 3]]),
    ("$[\"odd-name\"]", "x"),
    ("$.odd-name", "x"),
    ("$.missing[*]", []),
    ("$.features[5,0]", [1]),
])
def test_jsonpath_selects(path: str, expected: object) -> None:
    assert jsonpath.parse(path).apply(DOC) == expected


def test_jsonpath_on_a_csv_row() -> None:
    row = ["id42", "5.1", "3.5", "1.4", "0.2", "0.93"]
    assert jsonpath.parse("$[1:]").apply(row) == ["5.1", "3.5", "1.4", "0.2", "0.93"]
    assert jsonpath.parse("$[0,-1]").apply(row) == ["id42", "0.93"]


def test_jsonpath_definite_path_selecting_nothing_is_an_error() -> None:
    with pytest.raises(JsonPathError, match=r"\$\.nope selects nothing"):
        jsonpath.parse("$.nope").apply(DOC)


@pytest.mark.parametrize(("path", "message"), [
    ("features", "must start with \\$"),
    ("$." + "a" * 62, "SageMaker allows 63"),
    ("$..features", "expected a name after '.'"),
    ("$[?(@.id > 1)]", "is not an index"),
    ("$[1", "never closed"),
    ("$[a]", "is not an index"),
    ("$['a', b]", "is not a quoted name"),
    ("$[1:2:3]", "is not a \\[start:end\\] slice"),
    ("$[]", "is not an index"),
    ("$ features", "unexpected ' '"),
    ("$.features()", "unexpected '\\('"),
])
def test_jsonpath_refuses_what_the_service_does_not_support(path: str, message: str) -> None:
    with pytest.raises(JsonPathError, match=message):
        jsonpath.parse(path)


# -- DataProcessing ------------------------------------------------------------------------------

def test_csv_join_example_of_the_developer_guide() -> None:
    processing = DataProcessing.create("$[1:]", "$[0,-1]", "Input", "text/csv", "text/csv")
    (record,) = records(b"id42,5.1,3.5,1.4,0.2\n", "Line")
    assert processing.request_piece(record, True) == b"5.1,3.5,1.4,0.2\n"
    assert processing.outputs(b"0.93\n", [record]) == [b"id42,0.93"]


def test_csv_multi_record_answer_is_taken_line_by_line() -> None:
    processing = DataProcessing.create("$", "$", "Input", "text/csv", None)
    found = records(b"a,1\nb,2\n", "Line")
    assert processing.outputs(b"x\r\ny\n", found) == [b"a,1,x", b"b,2,y"]
    with pytest.raises(DataProcessingError, match="the answer has 3 line\\(s\\) for 2 records"):
        processing.outputs(b"x\ny\nz\n", found)


def test_json_join_adds_sagemaker_output_or_wraps_the_input() -> None:
    processing = DataProcessing.create("$.features", "$", "Input", "application/jsonlines",
                                       "application/jsonlines")
    found = records(b'{"id": 1, "features": [1, 2]}\n[3, 4]\n', "Line")
    assert processing.request_piece(found[0], True) == b"[1,2]\n"
    assert processing.outputs(b'{"p": 0.5}\n7\n', found) == [
        b'{"id":1,"features":[1,2],"SageMakerOutput":{"p":0.5}}',
        b'{"SageMakerInput":[3,4],"SageMakerOutput":7}']


def test_output_filter_without_join() -> None:
    processing = DataProcessing.create("$", "$.label", "None", "application/json", None)
    assert processing.per_record_output and processing.active
    (record,) = records(b'{"x": 1}', "None")
    assert processing.outputs(b'{"label": "cat", "score": 0.9}', [record]) == [b'"cat"']


def test_identity_settings_are_not_data_processing() -> None:
    processing = DataProcessing.create("$", "$", "None", "application/x-npy", None)
    assert not processing.active and not processing.per_record_output


@pytest.mark.parametrize(("args", "message"), [
    (("$[1:]", "$", "None", "application/x-npy", None), "needs ContentType"),
    (("$", "$", "Input", "text/csv", "application/json"), "in one format"),
    (("$", "$", "Output", "text/csv", None), "JoinSource must be None or Input"),
    (("$..x", "$", "None", "text/csv", None), "expected a name"),
])
def test_data_processing_refuses(args: tuple[str, str, str, str, str | None], message: str) -> None:
    with pytest.raises(DataProcessingError, match=message):
        DataProcessing.create(*args)


def test_bad_input_record_names_it() -> None:
    processing = DataProcessing.create("$.a", "$", "None", "application/jsonlines", None)
    found = records(b'{"a": 1}\nnot json\n', "Line")
    with pytest.raises(DataProcessingError, match="record 2 is not JSON"):
        processing.request_piece(found[1], True)


# -- settings ------------------------------------------------------------------------------------

def test_request_then_execution_parameters_then_defaults() -> None:
    effective = resolve(TransformParams(max_payload_mb=2), {"BatchStrategy": "SINGLE_RECORD",
                                                            "MaxPayloadInMB": 9})
    assert (effective.strategy, effective.max_payload_mb, effective.max_concurrent) == \
        ("SingleRecord", 2, 1)
    assert effective.sources == {"BatchStrategy": "/execution-parameters",
                                 "MaxPayloadInMB": "request", "MaxConcurrentTransforms": "default"}
    assert resolve(TransformParams(), {"BatchStrategy": "MultiRecord"}).strategy == "MultiRecord"
    assert resolve(TransformParams(), None).strategy == "MultiRecord"
    assert resolve(TransformParams(), None).max_payload_mb == 6


@pytest.mark.parametrize("answer", [{"BatchStrategy": "BATCH"}, {"MaxPayloadInMB": 101},
                                    {"MaxConcurrentTransforms": 0}, {"MaxPayloadInMB": "6"}])
def test_bad_execution_parameters_are_refused(answer: dict[str, object]) -> None:
    with pytest.raises(ParameterError, match="/execution-parameters answered"):
        resolve(TransformParams(), answer)


def test_environment_names_only_what_the_request_set() -> None:
    assert TransformParams(env={"A": "1"}).container_env() == {"A": "1", "SAGEMAKER_BATCH": "true"}
    assert TransformParams(strategy="SingleRecord", max_payload_mb=5, max_concurrent=4).container_env() == {
        "SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "5",
        "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "4"}


@pytest.mark.parametrize(("params", "message"), [
    (TransformParams(max_payload_mb=101), "MaxPayloadInMB must be 0 to 100"),
    (TransformParams(max_payload_mb=20, max_concurrent=6), "must be at most 100; 6 x 20 is 120"),
    (TransformParams(instance_count=0), "InstanceCount"),
    (TransformParams(env={f"K{i}": "v" for i in range(17)}), "at most 16 entries"),
    (TransformParams(split_type="Lines"), "SplitType must be one of"),
    (TransformParams(content_type="text/csv", split_type="None", input_filter="$[1:]"),
     "CSV needs SplitType Line and AssembleWith Line"),
    (TransformParams(max_retries=4), "InvocationsMaxRetries"),
])
def test_parameters_refused_as_the_service_refuses_them(params: TransformParams, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        params.check()


# -- inputs --------------------------------------------------------------------------------------

def test_inputs_in_key_order_with_sub_paths(tmp_path: Path) -> None:
    for name in ("b.csv", "a/z.csv", "a/b/c.csv", "B.csv", "a.csv"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_text("1\n")
    found = list_inputs(tmp_path / "in")
    # byte order of the keys, as S3 lists them: "." (0x2E) before "/" (0x2F)
    assert [item.key for item in found] == ["B.csv", "a.csv", "a/b/c.csv", "a/z.csv", "b.csv"]
    assert found[2].output(tmp_path / "out") == tmp_path / "out" / "a" / "b" / "c.csv.out"
    (single,) = list_inputs(tmp_path / "in" / "a.csv")
    assert single.key == "a.csv"


def test_bad_input_and_output_paths(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no file"):
        list_inputs(tmp_path / "empty")
    with pytest.raises(InputError, match="neither a file nor a directory"):
        list_inputs(tmp_path / "missing")
    with pytest.raises(InputError, match="is inside --input"):
        check_output_dir(tmp_path / "empty", tmp_path / "empty" / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        check_output_dir(tmp_path / "empty", tmp_path / "file")
