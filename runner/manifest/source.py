"""Reading a manifest file's bytes into text, refusing what is not a small UTF-8 text file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.manifest.limits import Limits

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class SourceError(Exception):
    """The file cannot be read as manifest text; ``line``/``column`` when a position is known."""

    def __init__(
        self, message: str, hint: str, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.line = line
        self.column = column


@dataclass(frozen=True)
class SourceText:
    """A manifest file's decoded text and the name it is reported under."""

    file: str
    text: str


def read_source(path: Path, file: str, limits: Limits) -> SourceText:
    """The text of ``path``, or SourceError when it is missing, too big, binary or not UTF-8."""
    if path.exists() and not path.is_file():  # a FIFO would block open(), a device never end
        raise SourceError("not a regular file", "pass a YAML manifest file")
    try:
        with path.open("rb") as stream:
            data = stream.read(limits.max_bytes + 1)
    except OSError as exc:
        raise SourceError(f"cannot read the file: {exc.strerror}", "check the path") from exc
    return SourceText(file, decode_source(data, limits))


def decode_source(data: bytes, limits: Limits) -> str:
    """``data`` as text; SourceError when it breaks a cap or is not UTF-8 text."""
    if len(data) > limits.max_bytes:
        raise SourceError(
            f"the file is larger than the {limits.max_bytes:,}-byte limit",
            "split the manifest into several files in one directory",
        )
    if data.startswith(_UTF16_BOMS):
        raise SourceError("the file is UTF-16 encoded", "save it as UTF-8")
    if b"\x00" in data:
        line, column = _position(data, data.index(b"\x00"))
        raise SourceError(
            "the file is binary (it contains a NUL byte), not YAML text",
            "pass a YAML manifest",
            line,
            column,
        )
    try:
        return data.removeprefix(_UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        raise SourceError(
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            "save the file as UTF-8",
            line,
            column,
        ) from exc


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte ``offset``."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column
