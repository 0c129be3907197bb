# Subreaper wrapper used by the test harness (tests/harness/reaper.rs).
#
# Usage: python3 reaper.py PROGRAM ARGS...
# Runs PROGRAM as a child while being a child subreaper, so every process
# that PROGRAM's descendants orphan (ssh ControlPersist masters, daemons
# started over ssh...) is re-parented here instead of to PID 1, which on the
# test machines never reaps. SIGTERM/SIGINT/SIGHUP are forwarded to PROGRAM.
# When PROGRAM exits, all remaining descendants are SIGKILLed and reaped,
# then the wrapper exits with PROGRAM's status (128+N if killed by signal N).
# If the wrapper's parent (the test) dies, the wrapper gets SIGUSR1
# (PR_SET_PDEATHSIG) and kills PROGRAM and all descendants the same way.
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

libc = ctypes.CDLL(None, use_errno=True)


class ParentDied(Exception):
    pass


def parent_died(_sig, _frame):
    raise ParentDied()


signal.signal(signal.SIGUSR1, parent_died)
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
libc.prctl(PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
if os.getppid() == 1:
    sys.exit(125)


def children():
    out = []
    me = os.getpid()
    try:
        tasks = os.listdir("/proc/%d/task" % me)
    except OSError:
        return out
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (me, t)) as f:
                out.extend(int(p) for p in f.read().split())
        except OSError:
            pass
    return out


def in_child():
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(s, signal.SIG_DFL)


main = None
pending = []


def forward(sig, _frame):
    if main is None:
        pending.append(sig)
        return
    try:
        os.kill(main, signal.SIGCONT)
        os.kill(main, sig)
    except OSError:
        pass


for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, forward)

pid = os.fork()
if pid == 0:
    try:
        in_child()
        os.execvp(sys.argv[1], sys.argv[1:])
    except BaseException as e:
        sys.stderr.write("reaper.py: cannot run %r: %s\n" % (sys.argv[1], e))
        sys.stderr.flush()
    finally:
        os._exit(127)
main = pid
for s in pending:
    forward(s, None)

status = None
try:
    while status is None:
        try:
            got, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if got == main:
            status = st
except ParentDied:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        os.kill(main, signal.SIGKILL)
    except OSError:
        pass

signal.signal(signal.SIGUSR1, signal.SIG_IGN)
# Kill and reap everything left; repeat as grandchildren get re-parented here.
while True:
    left = children()
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        if not children():
            break

if status is None:
    sys.exit(126)
if os.WIFSIGNALED(status):
    sys.exit(128 + os.WTERMSIG(status))
sys.exit(os.WEXITSTATUS(status))
