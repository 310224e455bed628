# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The files load balancers load on a reload (HAProxy's servers file, nginx's upstream file).

Several runs may share one file (one load balancer in front of several Docker hosts, each run owning
its own members), so a rewrite is read-modify-write under an exclusive ``flock`` of a lock file beside
it, and the new text replaces the old atomically (a reload never reads half a file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutFailed


@contextlib.contextmanager
def file_lock(path: str) -> t.Iterator[None]:
    """Hold an exclusive lock shared by every run that rewrites ``path``."""
    directory, base = os.path.split(os.path.abspath(path))
    lock_path = os.path.join(directory, f".{base}.zerodown-lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise RolloutFailed(f"cannot create the lock file {lock_path} beside {path} ({exc}); the directory must be "
                            "writable by the user the module runs as")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_text(path: str) -> t.Optional[str]:
    """The file's text, None when it does not exist."""
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RolloutFailed(f"cannot read {path} ({exc})")


def replace_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically, keeping the mode of the file it replaces (0644 for a new one)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".zerodown-", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
