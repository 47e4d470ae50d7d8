"""The first code of every sandbox process: it confines the process, reports what applied and
runs the user's code (see `app.security.sandbox`). Standard library only, imported cheaply."""

from __future__ import annotations

import builtins
import ctypes
import os
import resource
import sys
import time


class Child:
    """Runs first in the sandbox process: confines it, reports what applied, forks the process
    that runs the user's code and relays how it ended. The gateway sends this module's source
    to `python -c`, so it may use only the modules imported here and nothing of the gateway's."""

    NOBODY = 65534
    SIGKILL = 9  # the signal module would cost the child 4 ms of imports
    CLONE_NEWIPC = 0x08000000
    CLONE_NEWUSER = 0x10000000
    CLONE_NEWPID = 0x20000000
    CLONE_NEWNET = 0x40000000
    PR_SET_PDEATHSIG = 1
    PR_SET_DUMPABLE = 4
    PR_SET_NO_NEW_PRIVS = 38
    SYS_LANDLOCK_CREATE_RULESET = 444
    SYS_LANDLOCK_ADD_RULE = 445
    SYS_LANDLOCK_RESTRICT_SELF = 446
    LANDLOCK_CREATE_RULESET_VERSION = 1
    LANDLOCK_RULE_PATH_BENEATH = 1
    FS_EXECUTE = 1 << 0
    FS_WRITE_FILE = 1 << 1
    FS_READ_FILE = 1 << 2
    FS_READ_DIR = 1 << 3
    FS_TRUNCATE = 1 << 14
    MAX_OPEN_FILES = 256
    FS_RIGHTS_BY_ABI = (13, 14, 15, 15, 16)
    """How many filesystem access rights each Landlock ABI knows (1 to 5; later ABIs add none)."""

    class RulesetAttr(ctypes.Structure):
        _fields_ = (
            ("handled_access_fs", ctypes.c_uint64),
            ("handled_access_net", ctypes.c_uint64),
            ("scoped", ctypes.c_uint64),
        )

    class PathBeneathAttr(ctypes.Structure):
        _pack_ = 1
        _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))

    @staticmethod
    def main(argv: list[str]) -> None:
        """Confine this process and report how; then fork. The child runs the user's code (as
        pid 1 of the new pid namespace when there is one); this process waits for it."""
        report_fd, cpu, memory, processes, namespaces = (int(arg) for arg in argv[:5])
        libc = ctypes.CDLL(None, use_errno=True)
        report: dict[str, object] = {}
        rules = Child.open_rules(argv[5:])
        if os.geteuid() == 0:
            Child.reach_library()
        userns = Child.isolate(libc, bool(namespaces), report)
        # RLIMIT_NPROC counts every task of the uid (in the user namespace, when there is one)
        existing = 1 if userns else Child.count_tasks(os.getuid())
        Child.limit(resource.RLIMIT_CPU, cpu, cpu + 1)
        Child.limit(resource.RLIMIT_AS, memory)
        Child.limit(resource.RLIMIT_FSIZE, memory)
        Child.limit(resource.RLIMIT_NOFILE, Child.MAX_OPEN_FILES)
        Child.limit(resource.RLIMIT_CORE, 0)
        Child.prctl(libc, Child.PR_SET_DUMPABLE, 0)  # so the code cannot ptrace this process
        Child.prctl(libc, Child.PR_SET_NO_NEW_PRIVS, 1)
        try:
            report["landlock"] = Child.landlock(libc, rules)
        except OSError as exc:
            report["landlock"] = 0
            report["landlock_error"] = exc.strerror
        finally:
            for fd, _ in rules:
                os.close(fd)
        report["uid"] = os.getuid()
        report["ready"] = time.monotonic()
        os.write(report_fd, repr(report).encode() + b"\n")
        pid = os.fork()
        if pid:
            Child.monitor(pid, report_fd)
        os.close(report_fd)
        Child.prctl(libc, Child.PR_SET_PDEATHSIG, Child.SIGKILL)
        Child.prctl(libc, Child.PR_SET_DUMPABLE, 1)  # else /proc/self is root's after setuid
        Child.limit(resource.RLIMIT_NPROC, existing + processes)
        Child.run_user_code()

    @staticmethod
    def open_rules(readable: list[str]) -> list[tuple[int, int]]:
        """Descriptors of the paths Landlock will allow, with the access each gets; opened
        before dropping root, as nobody may not be able to reach them all."""
        read = Child.FS_EXECUTE | Child.FS_READ_FILE | Child.FS_READ_DIR
        everything = -1  # cut down to the rights the kernel knows
        null = Child.FS_READ_FILE | Child.FS_WRITE_FILE | Child.FS_TRUNCATE
        wanted = [(path, read) for path in readable] + [(".", everything), ("/dev/null", null)]
        rules = []
        for path, access in wanted:
            try:
                rules.append((os.open(path, os.O_PATH | os.O_CLOEXEC), access))
            except OSError:
                continue
        return rules

    @staticmethod
    def reach_library() -> None:
        """Where the standard library lies in a directory only root may enter (such as
        /root/.pyenv), import it through a descriptor opened now, so nobody can too."""
        prefix = sys.base_prefix
        ancestors = [prefix]
        while ancestors[-1] != "/":
            ancestors.append(os.path.dirname(ancestors[-1]))
        if all(os.stat(path).st_mode & 0o001 for path in ancestors):
            return
        fd = os.open(prefix, os.O_PATH)
        packages = [vars(module).get("__path__") for module in list(sys.modules.values())]
        for paths in [sys.path, *packages]:
            if isinstance(paths, list):
                paths[:] = [
                    f"/proc/self/fd/{fd}{path[len(prefix) :]}" if path.startswith(prefix) else path
                    for path in paths
                ]

    @staticmethod
    def prctl(libc: ctypes.CDLL, option: int, value: int) -> None:
        zero = ctypes.c_ulong(0)
        libc.prctl(option, ctypes.c_ulong(value), zero, zero, zero)

    @staticmethod
    def isolate(libc: ctypes.CDLL, wanted: bool, report: dict[str, object]) -> bool:
        """Enter new namespaces and, as root, become nobody; True when in a user namespace of
        its own."""
        flags = Child.CLONE_NEWNET | Child.CLONE_NEWPID | Child.CLONE_NEWIPC
        root = os.geteuid() == 0
        failure = "" if wanted else "turned off"
        if wanted and root:
            failure = Child.unshare(libc, flags)
        if root:
            Child.drop_root()
        userns = False
        if wanted:
            userns_failure = Child.unshare(libc, Child.CLONE_NEWUSER | (flags if failure else 0))
            userns = not userns_failure
            if failure:
                failure = userns_failure
        report["namespaces"] = not failure
        report["userns"] = userns
        if failure:
            report["namespaces_error"] = failure
        return userns

    @staticmethod
    def unshare(libc: ctypes.CDLL, flags: int) -> str:
        """'' on success, else why not."""
        if libc.unshare(flags) == 0:
            return ""
        return os.strerror(ctypes.get_errno())

    @staticmethod
    def drop_root() -> None:
        for path in (".", "main.py"):
            os.chown(path, Child.NOBODY, Child.NOBODY)
        os.setgroups([])
        os.setresgid(Child.NOBODY, Child.NOBODY, Child.NOBODY)
        os.setresuid(Child.NOBODY, Child.NOBODY, Child.NOBODY)

    @staticmethod
    def count_tasks(uid: int) -> int:
        """Processes and threads of `uid`, which its process limit counts too."""
        total = 0
        for entry in os.scandir("/proc"):
            try:
                if entry.name.isdigit() and entry.stat().st_uid == uid:
                    total += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
        return total

    @staticmethod
    def limit(which: int, soft: int, hard: int | None = None) -> None:
        hard = soft if hard is None else hard
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))

    @staticmethod
    def landlock(libc: ctypes.CDLL, rules: list[tuple[int, int]]) -> int:
        """Restrict the process with Landlock; returns the ABI version applied."""
        abi = int(
            libc.syscall(
                ctypes.c_long(Child.SYS_LANDLOCK_CREATE_RULESET),
                None,
                ctypes.c_long(0),
                ctypes.c_long(Child.LANDLOCK_CREATE_RULESET_VERSION),
            )
        )
        Child.check(abi)
        known = (1 << Child.FS_RIGHTS_BY_ABI[min(abi, 5) - 1]) - 1
        attr = Child.RulesetAttr(known, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
        ruleset = int(
            libc.syscall(
                ctypes.c_long(Child.SYS_LANDLOCK_CREATE_RULESET),
                ctypes.byref(attr),
                ctypes.c_long(ctypes.sizeof(attr)),
                ctypes.c_long(0),
            )
        )
        Child.check(ruleset)
        try:
            for fd, access in rules:
                rule = Child.PathBeneathAttr(access & known, fd)
                Child.check(
                    libc.syscall(
                        ctypes.c_long(Child.SYS_LANDLOCK_ADD_RULE),
                        ctypes.c_long(ruleset),
                        ctypes.c_long(Child.LANDLOCK_RULE_PATH_BENEATH),
                        ctypes.byref(rule),
                        ctypes.c_long(0),
                    )
                )
            Child.check(
                libc.syscall(
                    ctypes.c_long(Child.SYS_LANDLOCK_RESTRICT_SELF),
                    ctypes.c_long(ruleset),
                    ctypes.c_long(0),
                )
            )
        finally:
            os.close(ruleset)
        return abi

    @staticmethod
    def check(result: int) -> None:
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    @staticmethod
    def monitor(pid: int, report_fd: int) -> None:
        """Wait for the user's process, report how it ended, then kill what is left of the
        process group, this process included."""
        _, status = os.waitpid(pid, 0)
        exit_code = os.waitstatus_to_exitcode(status)
        os.write(report_fd, repr({"exit_code": exit_code}).encode() + b"\n")
        os.killpg(0, Child.SIGKILL)

    @staticmethod
    def run_user_code() -> None:
        """Run main.py as `__main__`, with a traceback that starts in the user's code, and
        `exit()` as without `-S`."""
        vars(builtins).update(exit=sys.exit, quit=sys.exit)
        sys.argv = ["main.py"]
        module = type(sys)("__main__")
        module.__file__ = "main.py"
        sys.modules["__main__"] = module
        try:
            with open("main.py", encoding="utf-8") as file:
                source = file.read()
            exec(compile(source, "main.py", "exec"), module.__dict__)
        except SystemExit:
            raise
        except BaseException as exc:
            trace = exc.__traceback__
            exc.__traceback__ = trace.tb_next if trace else None
            sys.excepthook(type(exc), exc, exc.__traceback__)
            sys.exit(1)


if __name__ == "__main__":
    Child.main(sys.argv[2:])
