"""Which fp32 model an int8 .q8 is compared with, and whether it is the one the .q8 was made from.

A .q8 made by convertmodel records its source's file name and sha256 (``metadata["source_file"]``,
``metadata["source_sha256"]``). Without ``--reference``, verify looks for that name as recorded and
beside the .q8, and refuses a file whose sha256 differs: a different model copied under the same
name would otherwise be measured as if it were the source. An explicit ``--reference`` is the
user's choice: a differing sha256 is then reported (``reference.sha256_matches`` false), not refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from convertmodel.errors import ModelIOError
from convertmodel.fsutil import file_sha256


@dataclass(frozen=True)
class Reference:
    path: str
    #: The sha256 the .q8 recorded for its source (None for files made before it was recorded).
    recorded_sha256: str | None
    sha256: str | None
    #: How the path was chosen: "--reference" or "source_file".
    found_by: str

    @property
    def matches(self) -> bool | None:
        """Is it the recorded source? None when there is nothing to compare (no record, or a directory)."""
        if self.recorded_sha256 is None or self.sha256 is None:
            return None
        return self.sha256 == self.recorded_sha256

    def to_dict(self) -> dict[str, object]:
        return {"found_by": self.found_by, "recorded_sha256": self.recorded_sha256, "sha256_matches": self.matches}

    def warning(self) -> str | None:
        """A line for stderr when the comparison cannot be trusted to be with the source, else None."""
        if self.matches is False:
            return (
                f"warning: --reference {self.path} is not the file {self.model_name} was made from "
                f"(sha256 {self.sha256[:12] if self.sha256 else '?'}..., recorded "
                f"{(self.recorded_sha256 or '?')[:12]}...); comparing with it as asked"
            )
        if self.recorded_sha256 is None and self.found_by == "source_file":
            return f"warning: {self.model_name} records no source sha256; cannot check that {self.path} is its source"
        return None

    model_name: str = "the .q8"


def find_reference(model_path: str, metadata: Mapping[str, str], reference: str | None) -> Reference:
    """The fp32 model to compare the int8 ``model_path`` with (see the module docstring)."""
    recorded = metadata.get("source_sha256") or None
    name = os.path.basename(model_path)
    if reference:
        return Reference(reference, recorded, _sha(reference), "--reference", name)
    src = metadata.get("source_file")
    cands = [] if not src else [os.path.join(os.path.dirname(os.path.abspath(model_path)), src), src]
    for c in cands:
        if os.path.isfile(c):
            ref = Reference(c, recorded, _sha(c), "source_file", name)
            if ref.matches is False:
                raise ModelIOError(
                    f"{model_path}: {c} is not the model this .q8 was made from: its sha256 is "
                    f"{ref.sha256}, the .q8 records {recorded}; pass --reference SOURCE_MODEL to compare with "
                    "a file of your choice"
                )
            return ref
    hint = f" (its metadata names source_file {src!r}, not found beside it)" if src else ""
    raise ModelIOError(
        f"{model_path}: an int8 model needs its fp32 source to compare with; pass --reference SOURCE_MODEL{hint}"
    )


def _sha(path: str) -> str | None:
    return file_sha256(path) if os.path.isfile(path) else None
