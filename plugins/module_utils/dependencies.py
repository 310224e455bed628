# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The supported range of the Python and the libraries a backend runs with, checked before anything changes.

A library older than the range fails in confusing ways half-way through a task: a keyword the client does
not know, a transport that cannot open its own URL scheme. :func:`check_platform` runs first, from
``platforms.get_platform``, and turns that into one clear error naming the installed and the needed
version. It reads versions from the installed distributions' metadata and imports nothing, so it also
explains a library that would fail to import.

The range (README.md, docs/development.md, meta/ee-requirements.txt keep it in step):
targets run Python 3.9 to 3.13; kubernetes >= 24.2.0; docker >= 5.0.3; requests >= 2.28.0.
"""

from __future__ import annotations

import re
import sys
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutError

PYTHON_FLOOR = (3, 9)
FLOORS = {"kubernetes": "24.2.0", "docker": "5.0.3", "requests": "2.28.0"}
# The libraries each platform's backend imports on the target.
PLATFORM_LIBRARIES = {"kubernetes": ("kubernetes",), "docker": ("docker", "requests")}

# docker before 6.0 imports distutils, which Python 3.12 removed.
DOCKER_WITHOUT_DISTUTILS = "6.0.0"
# requests 2.32 changed how a transport adapter gets its connection; docker before 7.1 then refuses its own
# http+docker:// scheme ("Not supported URL scheme http+docker").
DOCKER_FOR_REQUESTS_2_32 = "7.1.0"

VersionLookup = t.Callable[[str], t.Optional[str]]


class LibraryTooOld(RolloutError):
    """A library (or Python) on the host the task runs on is older than the collection supports."""


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: ``"24.2.0"`` -> (24, 2, 0), ``"26.1.0a1"`` -> (26, 1, 0)."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", str(text))
    if not match:
        return ()
    return tuple(int(part) for part in match.group(1).split("."))


def _older(installed: str, floor: str) -> bool:
    return parse_version(installed) < parse_version(floor)


def installed_version(distribution: str) -> t.Optional[str]:
    """The version of an installed distribution, from its metadata; None when it is not installed."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8, refused by the Python check first
        return None
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _where() -> str:
    version = ".".join(str(part) for part in sys.version_info[:3])
    return f"the Python that runs the task ({sys.executable or 'python'}, Python {version})"


def _too_old(library: str, installed: str, needed: str, why: str = "") -> LibraryTooOld:
    reason = f" ({why})" if why else ""
    return LibraryTooOld(
        f"{library} {installed} is installed in {_where()}; zerodown.rollout needs {library} >= {needed}{reason}. "
        f"Install it there (pip install '{library}>={needed}') or point ansible_python_interpreter at a Python "
        "that has it. Nothing was changed."
    )


def check_python(version_info: t.Optional[t.Sequence[int]] = None) -> None:
    """Refuse a Python older than :data:`PYTHON_FLOOR` (default: the running one)."""
    version_info = tuple(sys.version_info[:3]) if version_info is None else tuple(version_info)
    if version_info[:2] < PYTHON_FLOOR:
        installed = ".".join(str(part) for part in version_info)
        floor = ".".join(str(part) for part in PYTHON_FLOOR)
        raise LibraryTooOld(
            f"Python {installed} runs the task; zerodown.rollout needs Python >= {floor} on the host the task runs "
            "on. Set ansible_python_interpreter to a newer Python. Nothing was changed."
        )


def check_platform(platform: str, lookup: t.Optional[VersionLookup] = None,
                   version_info: t.Optional[t.Sequence[int]] = None) -> None:
    """Raise :class:`LibraryTooOld` when Python or a library ``platform``'s backend needs is below its floor.

    ``lookup`` (default :func:`installed_version`) and ``version_info`` (default the running Python's) are
    for tests. A library that is not installed at all passes here: the backend reports it with
    ``missing_required_lib``.
    """
    version_info = tuple(sys.version_info[:3]) if version_info is None else tuple(version_info)
    lookup = installed_version if lookup is None else lookup
    check_python(version_info)
    versions = {library: lookup(library) for library in PLATFORM_LIBRARIES.get(platform, ())}
    for library, installed in versions.items():
        if installed is not None and _older(installed, FLOORS[library]):
            raise _too_old(library, installed, FLOORS[library])
    docker, requests = versions.get("docker"), versions.get("requests")
    if docker is not None and tuple(version_info[:2]) >= (3, 12) and _older(docker, DOCKER_WITHOUT_DISTUTILS):
        raise _too_old("docker", docker, DOCKER_WITHOUT_DISTUTILS,
                       "on Python 3.12 and later: older releases import distutils, which Python 3.12 removed")
    if (docker is not None and requests is not None and not _older(requests, "2.32.0")
            and _older(docker, DOCKER_FOR_REQUESTS_2_32)):
        raise _too_old("docker", docker, DOCKER_FOR_REQUESTS_2_32,
                       f"with requests {requests}: requests 2.32 and later need docker 7.1.0 or later; "
                       "or keep requests below 2.32")
