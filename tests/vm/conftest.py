"""The VM rig's image, built once a session from the freshly built amd64 package; each
module boots its own copy of it (tests/vm/rig.py, docs/testing.md)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.vm.rig import Guest, RigError, image, rootfs


@pytest.fixture(scope="session")
def vm_image(
    package: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path]:
    try:
        return image(rootfs(), package("amd64"), tmp_path_factory.mktemp("vm-image"))
    except RigError as exc:
        pytest.fail(f"the VM rig could not build its image: {exc}")


@pytest.fixture(scope="module")
def new_guest(
    vm_image: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Guest]:
    """A guest on a copy of the image (sparse: the copy takes a second)."""
    disk, kernel, initrd = vm_image

    def make(**options: object) -> Guest:
        mine = tmp_path_factory.mktemp("vm") / disk.name
        # sparse: the 3 GB image holds about 1 GB of data
        subprocess.run(["cp", "--sparse=always", str(disk), str(mine)], check=True)
        return Guest(mine, kernel, initrd, **options)  # type: ignore[arg-type]

    return make
