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
    notes = archive.pack([one, two], tmp_path / "model.tar.gz")
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["model.bin", "sub/extra.txt"]
        member = tar.extractfile("model.bin")
        assert member is not None and member.read() == b"from two"
    assert any("model.bin" in n and "overwritten" in n for n in notes)
    assert any("symlink left out" in n for n in notes)


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
