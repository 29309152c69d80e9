"""A per-host placeholder container that owns the host's network identity for the whole job.

SageMaker keeps every host of a job resolvable until the job ends. On Docker a
container's DNS name goes away when it exits, so each host's name, address and
hostname belong to a placeholder, and the host's training container joins the
placeholder's network namespace (``network_mode=container:<id>``). When one
host's program exits, its peers still resolve it (and get a quick "connection
refused", as from an instance whose program has ended).

The placeholder image is built locally from nothing: a 129-byte static x86-64
program that waits in ``pause()`` forever. Engines of other architectures run
the job's own image with ``sleep infinity`` instead.
"""

from __future__ import annotations

import io
import struct
import tarfile
from typing import Any

PAUSE_IMAGE = "byoc-pause:1"
LABEL = "com.byoc.pause"
_BASE = 0x400000
#: mov eax, 34 (pause); syscall; jmp back to the mov
_CODE = bytes.fromhex("b822000000" "0f05" "ebf7")
_DOCKERFILE = b'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n'


def pause_program() -> bytes:
    """A minimal static ELF64 x86-64 executable that calls ``pause()`` in a loop."""
    header_size, program_header_size = 64, 56
    total = header_size + program_header_size + len(_CODE)
    entry = _BASE + header_size + program_header_size
    elf = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, entry, header_size, 0, 0, header_size, program_header_size,
        1, 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, total, total, 0x1000)
    return elf + segment + _CODE


def placeholder_command(client: Any, job_image: str) -> dict[str, Any]:
    """``image`` and ``entrypoint`` for a placeholder on this engine (building the image once)."""
    import docker.errors

    if client.info().get("Architecture") not in ("x86_64", "amd64"):
        return {"image": job_image, "entrypoint": ["sleep", "infinity"]}
    try:
        client.images.get(PAUSE_IMAGE)
    except docker.errors.ImageNotFound:
        client.images.build(fileobj=_context(), custom_context=True, tag=PAUSE_IMAGE, rm=True,
                            labels={LABEL: "1"})
    return {"image": PAUSE_IMAGE, "entrypoint": None}


def _context() -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, mode in (("Dockerfile", _DOCKERFILE, 0o644),
                                 ("pause", pause_program(), 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer
