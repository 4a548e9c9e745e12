"""The wheel works anywhere: the event schema and the Faust fingerprints ship inside it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_schema_and_the_fingerprints(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("ticketpulse-*.whl")
    with zipfile.ZipFile(wheel) as z:
        schema = z.read("streams/ingest/schemas/ticket-event.v1.json")
        assert "streams/runtime/faust_fingerprints.json" in z.namelist()
        assert not [n for n in z.namelist() if n.startswith("streams/ingest/schemas/examples")]
    assert schema == (ROOT / "schemas" / "ticket-event.v1.json").read_bytes()


def test_the_package_link_points_at_the_source_of_truth() -> None:
    link = ROOT / "streams" / "ingest" / "schemas"
    assert link.is_symlink() and link.resolve() == (ROOT / "schemas").resolve()
