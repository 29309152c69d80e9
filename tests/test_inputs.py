"""Pipe feeding, RecordIO framing, augmented manifests and the input settings, without containers.

The readers here follow SageMaker's documentation of the wire format, not byoc's writer.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import struct
import threading
import time
from pathlib import Path

import pytest

from byoc.backends.base import HostSpec
from byoc.errors import ConfigError
from byoc.job import ChannelDefinition, InputOptions, JobDefinition
from byoc.local.inputs import recordio
from byoc.local.inputs.pipe import ChannelObjects, Feeder, Pipes, load_channels
from byoc.project import ProjectConfig

MAGIC_BYTES = bytes.fromhex("0a23d7ce")


def read_records(data: bytes) -> list[bytes]:
    """RecordIO as documented: magic, uint32 LE (flag << 29 | length), payload, zeros to 4 bytes."""
    records: list[bytes] = []
    parts: list[bytes] = []
    offset = 0
    while offset < len(data):
        assert data[offset:offset + 4] == MAGIC_BYTES, f"no magic at {offset}"
        (word,) = struct.unpack("<I", data[offset + 4:offset + 8])
        length, flag = word & 0x1FFFFFFF, word >> 29
        payload = data[offset + 8:offset + 8 + length]
        assert len(payload) == length
        pad = -length % 4
        assert data[offset + 8 + length:offset + 8 + length + pad] == b"\0" * pad
        offset += 8 + length + pad
        parts.append(payload)
        if flag in (0, 3):
            records.append(b"".join(parts))
            parts = []
    assert not parts
    return records


def wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def read_fifo(path: Path, limit: int | None = None) -> bytes:
    wait_for(path)
    assert stat.S_ISFIFO(path.stat().st_mode)
    with path.open("rb", buffering=0) as pipe:
        return pipe.read(limit) if limit is not None else pipe.read()


# RecordIO ---------------------------------------------------------------------------------------

def test_recordio_matches_the_documented_examples() -> None:
    assert recordio.frame(b"1") == bytes.fromhex("0a23d7ce 01000000 31000000")
    assert recordio.frame(b"abcd") == bytes.fromhex("0a23d7ce 04000000 61626364")
    assert recordio.frame(b"") == bytes.fromhex("0a23d7ce 00000000")
    assert read_records(recordio.frame(b"hello") + recordio.frame(b"")) == [b"hello", b""]


def test_objects_over_the_29_bit_limit_become_multi_part_records() -> None:
    assert list(recordio.parts(10, max_part=4)) == [(0, 4, 1), (4, 4, 2), (8, 2, 3)]
    assert list(recordio.parts(4, max_part=4)) == [(0, 4, 0)]
    with pytest.raises(ValueError):
        recordio.header(recordio.MAX_PART + 1)
    assert recordio.header(recordio.MAX_PART, recordio.LAST)[4:] == struct.pack("<I", 0x7FFFFFFF)


# The feeder ---------------------------------------------------------------------------------------

def piped(name: str = "train", source: Path = Path("."), *, record_wrapper: str | None = None,
          compression: str | None = None, shuffle_seed: int | None = None,
          attribute_names: tuple[str, ...] | None = None) -> ChannelDefinition:
    """A Pipe-mode channel of *source* (unchecked: a feeder test gives the source itself)."""
    return ChannelDefinition(name, str(source), input_mode="Pipe", record_wrapper=record_wrapper,
                             compression=compression, shuffle_seed=shuffle_seed,
                             attribute_names=attribute_names)


def _feeder(tmp_path: Path, channel: ChannelDefinition, source: Path, hosts: int = 1,
            host: str = "algo-1", sharded: bool = False) -> Feeder:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    objects = ChannelObjects.load(channel, source, sharded)
    names = [f"algo-{i}" for i in range(1, hosts + 1)]
    return Feeder(data, channel, lambda epoch: objects.epoch(epoch, names, host), tmp_path / "scratch")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    source = tmp_path / "train"
    (source / "sub").mkdir(parents=True)
    (source / "b.txt").write_bytes(b"bb")
    (source / "a.txt").write_bytes(b"a")
    (source / "sub" / "c.txt").write_bytes(b"ccc")
    (source / "a-z.txt").write_bytes(b"dash")  # '-' sorts before '.' and '/' in key order
    return source


def test_epochs_stream_the_files_in_key_order_and_each_fifo_appears_after_the_last(
        tmp_path: Path, files: Path) -> None:
    feeder = _feeder(tmp_path, piped(), files)
    feeder.prepare()
    assert stat.S_ISFIFO((tmp_path / "data" / "train_0").stat().st_mode)
    assert not (tmp_path / "data" / "train_1").exists()
    feeder.start()
    try:
        for epoch in range(3):
            assert read_fifo(tmp_path / "data" / f"train_{epoch}") == b"dashabbccc"
        wait_for(tmp_path / "data" / "train_3")
        assert not (tmp_path / "data" / "train_0").exists()
    finally:
        feeder.stop()
    assert feeder.epochs_done == 3 and feeder.error is None


def test_a_reader_that_closes_early_gets_the_next_epoch_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))
    feeder = _feeder(tmp_path, piped(), big)
    feeder.prepare()
    feeder.start()
    try:
        assert read_fifo(tmp_path / "data" / "train_0", 10) == big.read_bytes()[:10]
        assert read_fifo(tmp_path / "data" / "train_1") == big.read_bytes()
    finally:
        feeder.stop()
    assert feeder.closed_early == 1 and feeder.epochs_done == 2


def test_stopping_a_feeder_whose_fifo_is_never_opened_returns_at_once(tmp_path: Path,
                                                                       files: Path) -> None:
    feeder = _feeder(tmp_path, piped(), files)
    feeder.prepare()
    feeder.start()
    time.sleep(0.2)
    started = time.monotonic()
    feeder.stop()
    assert time.monotonic() - started < 2
    assert feeder._thread is not None and not feeder._thread.is_alive()
    assert feeder.epochs_done == 0 and feeder.error is None


def test_two_channels_are_read_in_parallel_and_independently(tmp_path: Path, files: Path) -> None:
    other = tmp_path / "validation.csv"
    other.write_bytes(b"x,y\n")
    host = HostSpec("algo-1", tmp_path / "host", {})
    (host.root / "input" / "data").mkdir(parents=True)
    objects = load_channels([piped("train", files), piped("validation", other)], "File")
    pipes = Pipes.for_job([host], objects, tmp_path / "scratch")
    data = host.root / "input" / "data"
    results: dict[str, list[bytes]] = {}

    def read(name: str, epochs: int) -> None:
        results[name] = [read_fifo(data / f"{name}_{epoch}") for epoch in range(epochs)]

    with pipes:
        readers = [threading.Thread(target=read, args=("train", 3)),
                   threading.Thread(target=read, args=("validation", 1))]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(10)
    assert results == {"train": [b"dashabbccc"] * 3, "validation": [b"x,y\n"]}
    notes = pipes.notes()
    assert notes == ["algo-1: Pipe channel 'train': 3 epoch(s) streamed",
                     "algo-1: Pipe channel 'validation': 1 epoch(s) streamed"]


def test_record_wrapper_wraps_each_file_as_one_record(tmp_path: Path, files: Path) -> None:
    feeder = _feeder(tmp_path, piped(record_wrapper="RecordIO"), files)
    feeder.prepare()
    feeder.start()
    try:
        stream = read_fifo(tmp_path / "data" / "train_0")
    finally:
        feeder.stop()
    assert read_records(stream) == [b"dash", b"a", b"bb", b"ccc"]
    assert stream[:12] == bytes.fromhex("0a23d7ce 04000000") + b"dash"


def test_gzip_objects_are_decompressed_into_the_pipe(tmp_path: Path) -> None:
    source = tmp_path / "gz"
    source.mkdir()
    plain = os.urandom(3 << 20)
    (source / "1.gz").write_bytes(gzip.compress(plain))
    (source / "2.gz").write_bytes(gzip.compress(b"one") + gzip.compress(b"two"))  # two members
    for wrapper, expected in (("None", plain + b"onetwo"),
                              ("RecordIO", recordio.frame(plain) + recordio.frame(b"onetwo"))):
        feeder = _feeder(tmp_path / wrapper, piped(record_wrapper=wrapper, compression="Gzip"), source)
        feeder.prepare()
        feeder.start()
        try:
            stream = read_fifo(tmp_path / wrapper / "data" / "train_0")
        finally:
            feeder.stop()
        assert stream == expected
        if wrapper == "RecordIO":
            assert read_records(stream) == [plain, b"onetwo"]


def test_a_file_that_is_not_gzip_ends_the_stream_and_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip at all")
    feeder = _feeder(tmp_path, piped(compression="Gzip"), bad)
    feeder.prepare()
    feeder.start()
    try:
        assert read_fifo(tmp_path / "data" / "train_0") == b""
        time.sleep(0.2)
    finally:
        feeder.stop()
    assert feeder.error is not None and "not gzip data" in feeder.error


def test_shuffle_reorders_each_epoch_deterministically_and_sharding_splits_it(files: Path) -> None:
    channel = piped(shuffle_seed=7)
    objects = ChannelObjects.load(channel, files, sharded=False)
    orders = [objects.epoch(epoch, ["algo-1"], "algo-1") for epoch in range(6)]
    again = ChannelObjects.load(channel, files, sharded=False)
    assert orders == [again.epoch(epoch, ["algo-1"], "algo-1") for epoch in range(6)]
    assert all(sorted(map(str, order)) == sorted(map(str, orders[0])) for order in orders)
    assert len({tuple(map(str, order)) for order in orders}) > 1
    sharded = ChannelObjects.load(channel, files, sharded=True)
    for epoch in range(3):
        first = sharded.epoch(epoch, ["algo-1", "algo-2"], "algo-1")
        second = sharded.epoch(epoch, ["algo-1", "algo-2"], "algo-2")
        assert len(first) == len(second) == 2
        assert sorted(map(str, first + second)) == sorted(map(str, orders[0]))
    plain = ChannelObjects.load(piped(), files, sharded=True)
    assert [p.name for p in plain.epoch(0, ["algo-1", "algo-2"], "algo-1")  # type: ignore[union-attr]
            ] == ["a-z.txt", "b.txt"]
    assert [p.name for p in plain.epoch(0, ["algo-1", "algo-2"], "algo-2")  # type: ignore[union-attr]
            ] == ["a.txt", "c.txt"]


# Augmented manifests -----------------------------------------------------------------------------

def _manifest(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "1.jpg").write_bytes(b"\xff\xd8one")
    (tmp_path / "img" / "2.jpg").write_bytes(b"\xff\xd8two!")
    path = tmp_path / "train.manifest"
    path.write_text(json.dumps({"source-ref": "img/1.jpg", "label": 1, "note": "x"}) + "\n"
                    + json.dumps({"label": 0, "source-ref": "img/2.jpg"}) + "\n\n")
    return path


def test_an_augmented_manifest_streams_each_attribute_as_its_own_record(tmp_path: Path) -> None:
    channel = piped(record_wrapper="RecordIO", attribute_names=("source-ref", "label"))
    feeder = _feeder(tmp_path, channel, _manifest(tmp_path))
    feeder.prepare()
    feeder.start()
    try:
        stream = read_fifo(tmp_path / "data" / "train_0")
    finally:
        feeder.stop()
    assert read_records(stream) == [b"\xff\xd8one", b"1", b"\xff\xd8two!", b"0"]


def test_manifest_problems_are_refused_before_anything_runs(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    channel = [piped("train", manifest, attribute_names=("source-ref", "missing"))]
    with pytest.raises(ConfigError, match="line 1: no attribute 'missing'"):
        load_channels(channel, "Pipe")
    manifest.write_text('{"source-ref": "s3://bucket/key.jpg"}\n')
    channel = [piped("train", manifest, attribute_names=("source-ref",))]
    with pytest.raises(ConfigError, match="streams local files"):
        load_channels(channel, "Pipe")
    manifest.write_text('{"source-ref": "img/none.jpg"}\n')
    with pytest.raises(ConfigError, match="is not a file"):
        load_channels(channel, "Pipe")
    manifest.write_text('["not", "an object"]\n')
    with pytest.raises(ConfigError, match="line 1: not a JSON object"):
        load_channels(channel, "Pipe")


@pytest.mark.parametrize("reference", [
    "../secret.txt", "img/../../secret.txt", "{outside}/secret.txt", "file://{outside}/secret.txt",
    "img/link.jpg", "linked/1.jpg"])
def test_a_manifest_cannot_name_a_file_outside_its_folder(tmp_path: Path, reference: str) -> None:
    """Relative, absolute, file:// and symlinked references that resolve outside the manifest's
    folder are refused, naming the line, before any byte is read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the host's secret")
    (outside / "1.jpg").write_bytes(b"\xff\xd8")
    folder = tmp_path / "data"
    folder.mkdir()
    manifest = _manifest(folder)
    (folder / "img" / "link.jpg").symlink_to(outside / "secret.txt")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    manifest.write_text('{"source-ref": "img/1.jpg"}\n'
                        + json.dumps({"source-ref": reference.format(outside=outside)}) + "\n")
    channel = [piped("train", manifest, attribute_names=("source-ref",))]
    with pytest.raises(ConfigError) as caught:
        load_channels(channel, "Pipe")
    assert caught.value.message.startswith(f"{manifest.resolve()}, line 2: ")
    assert f"is outside {folder.resolve()}" in caught.value.message


def test_a_manifest_may_name_files_anywhere_under_its_folder_or_the_root_given(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    manifest = _manifest(folder)
    images = tmp_path / "images"
    images.mkdir()
    (images / "3.jpg").write_bytes(b"three")
    manifest.write_text(json.dumps({"source-ref": f"file://{folder / 'img' / '1.jpg'}"}) + "\n"
                        + json.dumps({"source-ref": "img/sub/../2.jpg"}) + "\n")
    channel = piped("train", manifest, attribute_names=("source-ref",))
    found = load_channels([channel], "Pipe")["train"]
    assert found.epoch(0, ["algo-1"], "algo-1") == [(folder / "img" / "1.jpg").resolve(),
                                                     (folder / "img" / "2.jpg").resolve()]
    manifest.write_text('{"source-ref": "../images/3.jpg"}\n')
    with pytest.raises(ConfigError, match="line 1: '../images/3.jpg' is outside"):
        load_channels([channel], "Pipe")
    # byoc.toml names a root: a path relative to the file's folder
    toml = tmp_path / "byoc.toml"
    toml.write_text('[train.channels.train]\nmanifest_root = "."\n')
    options = InputOptions.parse(channel_modes={"train": "Pipe"},
                                 attribute_names={"train": "source-ref"})
    settings = options.over(InputOptions.from_config(ProjectConfig.read(toml))).resolve({"train": manifest})
    assert settings["train"].manifest_root == tmp_path / "."
    found = load_channels(settings.values(), "File")["train"]
    assert found.epoch(0, ["algo-1"], "algo-1") == [(images / "3.jpg").resolve()]
    toml.write_text('[train.channels.train]\nmanifest_root = "missing"\n')
    with pytest.raises(ConfigError, match="manifest root .*missing is not a directory"):
        options.over(InputOptions.from_config(ProjectConfig.read(toml))).resolve({"train": manifest})
    with pytest.raises(ConfigError, match="a manifest root applies to an augmented manifest channel"):
        InputOptions(manifest_roots={"train": tmp_path}).resolve({"train": folder})


def test_a_manifest_line_nested_too_deeply_is_refused_naming_the_line(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.write_text('{"source-ref": "img/1.jpg"}\n{"source-ref": "img/1.jpg", "x": '
                        + "[" * 100000 + "]" * 100000 + "}\n")
    channel = [piped("train", manifest, attribute_names=("source-ref",))]
    with pytest.raises(ConfigError, match=r"train.manifest, line 2 is not JSON byoc can read: it"
                                          " nests arrays or objects too deeply"):
        load_channels(channel, "Pipe")


# Settings and the service's refusals --------------------------------------------------------------

def test_options_override_the_project_file_key_by_key(tmp_path: Path) -> None:
    toml = tmp_path / "byoc.toml"
    toml.write_text('[train]\ninput_mode = "Pipe"\n[train.channels.train]\nrecord_wrapper = "RecordIO"\n'
                    'shuffle_seed = 3\n[train.channels.meta]\ninput_mode = "FastFile"\n')
    sources = {"train": tmp_path, "meta": tmp_path}
    from_file = InputOptions.from_config(ProjectConfig.read(toml))
    settings = InputOptions().over(from_file).resolve(sources)
    assert settings["train"] == piped("train", tmp_path, record_wrapper="RecordIO", shuffle_seed=3)
    assert settings["meta"].input_mode == "FastFile"
    given = InputOptions.parse(input_mode="File", channel_modes={"train": "Pipe"},
                               shuffle_seeds={"train": "9"})
    settings = given.over(from_file).resolve(sources)
    assert settings["train"] == piped("train", tmp_path, record_wrapper="RecordIO", shuffle_seed=9)
    assert settings["meta"].input_mode == "FastFile"
    assert InputOptions().resolve({"x": tmp_path})["x"] == ChannelDefinition("x", str(tmp_path),
                                                                       input_mode="File")


@pytest.mark.parametrize(("options", "message"), [
    ({"input_mode": "Stream"}, "Value 'Stream' at 'algorithmSpecification.trainingInputMode' failed"
     " to satisfy constraint: Member must satisfy enum value set: [Pipe, File, FastFile]"),
    ({"channel_modes": {"train": "pipe"}}, "Value 'pipe' at 'inputDataConfig.2.member.inputMode'"),
    ({"record_wrappers": {"train": "RecordIo"}}, "at 'inputDataConfig.2.member.recordWrapperType'"),
    ({"compressions": {"train": "Zip"}, "input_mode": "Pipe"},
     "at 'inputDataConfig.2.member.compressionType'"),
    ({"attribute_names": {"train": "source-ref,label"}},
     "AugmentedManifestFile can only be used if the Channel's input mode is Pipe"),
    ({"attribute_names": {"train": "source-ref"}, "input_mode": "FastFile"},
     "AugmentedManifestFile can only be used if the Channel's input mode is Pipe"),
    ({"compressions": {"train": "Gzip"}}, "CompressionType is used only in Pipe input mode. In File"
     " mode, leave this field unset or set it to None."),
    ({"record_wrappers": {"train": "RecordIO"}, "input_mode": "FastFile"},
     "RecordWrapperType RecordIO is used only in Pipe input mode"),
    ({"shuffle_seeds": {"train": "seven"}}, "ShuffleConfig.Seed must be an integer"),
    ({"channel_modes": {"nope": "Pipe"}}, "--channel-input-mode names channel 'nope'"),
    ({"attribute_names": {"meta": "a"}, "input_mode": "Pipe"}, "is not a file"),
])
def test_refusals_name_the_rule(tmp_path: Path, options: dict[str, object], message: str) -> None:
    (tmp_path / "m.manifest").write_text("{}\n")
    sources = {"meta": tmp_path, "train": tmp_path / "m.manifest"}
    with pytest.raises(ConfigError) as caught:
        InputOptions.parse(**options).resolve(sources)  # type: ignore[arg-type]
    assert message in caught.value.message


def test_a_channel_directory_with_the_name_of_a_pipe_fifo_is_refused(tmp_path: Path) -> None:
    sources = {"train": tmp_path, "train_0": tmp_path, "train_x": tmp_path}
    with pytest.raises(ConfigError, match="channel 'train_0' is a directory with the name of Pipe"
                                          " channel 'train''s FIFO for epoch 0"):
        InputOptions.parse(channel_modes={"train": "Pipe"}).resolve(sources)
    # the job value runs the same check: a definition from any source is refused alike
    with pytest.raises(ConfigError, match="channel 'train_0' is a directory with the name of Pipe"):
        JobDefinition("job", (ChannelDefinition("train", str(tmp_path), input_mode="Pipe"),
                              ChannelDefinition("train_0", str(tmp_path))))
    both = InputOptions.parse(input_mode="Pipe").resolve(sources)  # FIFOs train_0, train_0_0: apart
    assert {channel.input_mode for channel in both.values()} == {"Pipe"}
    with pytest.raises(ConfigError, match="invalid channel name '..'"):
        InputOptions().resolve({"..": tmp_path})


def test_a_bad_project_file_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "byoc.toml"
    toml.write_text('[train.channels.train]\nshuffle = 3\n')
    with pytest.raises(ConfigError, match="unknown key 'shuffle'"):
        InputOptions.from_config(ProjectConfig.read(toml))
    toml.write_text('[train.channels.train]\nattribute_names = "a,b"\n')
    with pytest.raises(ConfigError, match="must be a list of strings"):
        InputOptions.from_config(ProjectConfig.read(toml))
    toml.write_text("[train]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="byoc.toml: it nests arrays or tables too deeply"):
        InputOptions.from_config(ProjectConfig.read(toml))
