"""Model archives: flat packing, and extraction that refuses hostile members."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from byoc import archive
from byoc.errors import ArchiveError


def _tar(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_pack_puts_files_at_the_root_and_merges_hosts(tmp_path: Path) -> None:
    one, two = tmp_path / "algo-1", tmp_path / "algo-2"
    (one / "sub").mkdir(parents=True)
    two.mkdir()
    (one / "model.bin").write_text("from one")
    (one / "sub" / "extra.txt").write_text("extra")
    (two / "model.bin").write_text("from two")
    (two / "link").symlink_to(two / "model.bin")
    notes, files = archive.pack([one, two], tmp_path / "model.tar.gz")
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["model.bin", "sub/extra.txt"]
        member = tar.extractfile("model.bin")
        assert member is not None and member.read() == b"from two"
    assert any("model.bin" in n and "overwritten" in n for n in notes)
    assert any("symlink left out" in n for n in notes)
    assert files == 2


def test_extract_round_trips_a_packed_model(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.skops").write_bytes(b"\x00\x01")
    archive.pack([tmp_path / "src"], tmp_path / "model.tar.gz")
    archive.extract(tmp_path / "model.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / "model.skops").read_bytes() == b"\x00\x01"


@pytest.mark.parametrize(("member", "message"), [
    (_file("/etc/evil"), "is an absolute path"),
    (_file("../evil"), "points outside the archive"),
    (_file("ok/../../evil"), "points outside the archive"),
    (_special("link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
    (_special("hard", tarfile.LNKTYPE, "model.bin"), "is a link"),
    (_special("dev", tarfile.CHRTYPE), "is a device or FIFO"),
    (_special("fifo", tarfile.FIFOTYPE), "is a device or FIFO"),
])
def test_hostile_members_are_refused_and_nothing_is_extracted(
        tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], message: str) -> None:
    bad = _tar(tmp_path / "bad.tar.gz", _file("model.bin"), member)
    with pytest.raises(ArchiveError, match=message):
        archive.extract(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil").exists()


def test_a_file_that_is_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_text("not a tar")
    with pytest.raises(ArchiveError, match="cannot read"):
        archive.extract(tmp_path / "model.tar.gz", tmp_path / "out")


def test_an_unreadable_archive_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(bytes(range(256)) * 20)
    with pytest.raises(ArchiveError) as caught:
        archive.extract(tmp_path / "model.tar.gz", tmp_path / "out")
    assert "\n" not in caught.value.message and not caught.value.detail
    assert "not a tar archive" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_a_gzip_bomb_is_refused_while_streaming(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(archive.MAX_BYTES_ENV, "1M")
    honest = tmp_path / "honest.tar.gz"
    with tarfile.open(honest, "w:gz") as tar:
        info = tarfile.TarInfo("weights.bin")
        info.size = 3 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert honest.stat().st_size < 20_000
    with pytest.raises(ArchiveError, match=rf"more than 1 MiB uncompressed \(set {archive.MAX_BYTES_ENV}"):
        archive.extract(honest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ArchiveError, match="more than 1 MiB"):
        archive.inspect(honest)
    monkeypatch.setenv(archive.MAX_BYTES_ENV, "4M")
    assert archive.extract(honest, tmp_path / "out") == archive.Contents(1, 3 * 1024 * 1024)


def test_too_many_members_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many = _tar(tmp_path / "many.tar.gz", *[_file(f"part-{n}") for n in range(30)])
    monkeypatch.setenv(archive.MAX_MEMBERS_ENV, "20")
    with pytest.raises(ArchiveError, match=f"more than 20 members .set {archive.MAX_MEMBERS_ENV}"):
        archive.extract(many, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv(archive.MAX_MEMBERS_ENV, "lots")
    with pytest.raises(ArchiveError, match="give a whole number"):
        archive.extract(many, tmp_path / "out")
    monkeypatch.delenv(archive.MAX_MEMBERS_ENV)
    assert archive.extract(many, tmp_path / "out").files == 30


def test_the_defaults_are_documented() -> None:
    limits = archive.Limits.from_env({})
    assert (limits.max_bytes, limits.max_members) == (10 * 1024**3, 10_000)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert archive.MAX_BYTES_ENV in readme and archive.MAX_MEMBERS_ENV in readme


def test_an_empty_model_is_refused(tmp_path: Path) -> None:
    archive.pack([tmp_path / "nothing"], tmp_path / "model.tar.gz")
    with pytest.raises(ArchiveError, match="--model .*model.tar.gz: the archive holds no model"):
        archive.check_model(tmp_path / "model.tar.gz", "--model")
    _tar(tmp_path / "ok.tar.gz", _file("model.bin"))
    assert archive.check_model(tmp_path / "ok.tar.gz", "--model").files == 1


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def test_copies_and_extraction_keep_holes_as_holes(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.mkdir()
    sparse = source / "sparse.bin"
    with sparse.open("wb") as handle:
        handle.write(b"head")
        handle.seek(64 * 1024 * 1024)
        handle.write(b"tail")
    if _allocated(sparse) > 1024 * 1024:
        pytest.skip("this file system does not keep holes")
    archive.copy_tree(source, tmp_path / "copy")
    copied = tmp_path / "copy" / "sparse.bin"
    assert copied.stat().st_size == sparse.stat().st_size
    assert _allocated(copied) < 1024 * 1024
    with copied.open("rb") as handle:
        assert handle.read(4) == b"head"
        handle.seek(64 * 1024 * 1024)
        assert handle.read() == b"tail"
    # an archive holds the zeros; extracting it leaves them out again
    archive.pack([source], tmp_path / "model.tar.gz")
    archive.extract(tmp_path / "model.tar.gz", tmp_path / "out")
    extracted = tmp_path / "out" / "sparse.bin"
    assert extracted.read_bytes() == sparse.read_bytes()
    assert _allocated(extracted) < 2 * 1024 * 1024
