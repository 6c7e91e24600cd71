"""Child process of test_crash_replace: replaces an artifact over and over until killed.

Usage: python _replace_child.py DEST FIRST_VERSION [--no-exchange] [--die-between-renames]
Each version is a small artifact (manifest + 20 files that all hold the version
number); the version increases by one per replace and is printed once in place.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import kg.atomic as atomic  # noqa: E402
from kg.artifact import write_manifest  # noqa: E402

if "--no-exchange" in sys.argv:
    atomic._exchange = lambda a, b: False  # the portable two-rename path
if "--die-between-renames" in sys.argv:  # SIGKILL right after the old artifact is moved aside
    import os
    import signal

    rename = os.rename

    def rename_then_die(src, dst):
        rename(src, dst)
        if Path(src).name == Path(sys.argv[1]).name:
            os.kill(os.getpid(), signal.SIGKILL)

    atomic.os.rename = rename_then_die

dest, version = Path(sys.argv[1]), int(sys.argv[2])
while True:
    with atomic.atomic_dir(dest, overwrite=True, replaces="test.replace") as tmp:
        for i in range(20):
            (tmp / f"part-{i:02d}.txt").write_text(f"{version}\n" * 200)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "deep.txt").write_text(str(version))
        write_manifest(tmp, format="test.replace", format_version=1, metadata={"version": version})
    print(version, flush=True)
    version += 1
