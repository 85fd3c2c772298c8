#!/usr/bin/env python3
"""redis-server's CPU per message append on the Redis store, without chat-server.

Runs chat-redis's APPEND script (read from crates/chat-redis/src/messages.rs) against a
throwaway redis-server: 16 threads in turn, each kept at the 100-message cap, 16
EVALSHA in flight over one connection (as chat-server's multiplexed link pipelines
them), one 187-byte message per call. Prints redis-server's CPU time (user + system,
/proc/<pid>/stat) per append. Each extra argument is a file holding another Lua script
with the same KEYS and ARGV, measured the same way, to price a part of the script by
leaving it out.

    python3 scripts/bench/redis-append-cost.py
    N=40000 REPS=3 python3 scripts/bench/redis-append-cost.py variant.lua

Needs redis-server (apt-get install redis-server). Loopback only.
"""
import os, re, socket, struct, subprocess, sys, tempfile, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SRC = open(os.path.join(ROOT, "crates/chat-redis/src/messages.rs")).read()
# The prelude every script shares, with the has-content byte's position (CONTENT_FLAG + 1).
SHARED = re.search(r'const SHARED: &str = r"(.*?)";', SRC, re.S).group(1).replace("FLAG", "27")
APPEND = SHARED + re.search(
    r'static APPEND: LazyLock<Script> = LazyLock::new\(\|\| \{\s*script\(\s*r"(.*?)",\s*\)',
    SRC, re.S).group(1)
N = int(os.environ.get("N", 60000))
REPS = int(os.environ.get("REPS", 2))
THREADS, IN_FLIGHT, TTL_MS, KEEP = 16, 16, 86_400_000, 100


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def measure(name, script):
    port, data = free_port(), tempfile.mkdtemp()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                               "--dir", data], stdout=subprocess.DEVNULL)
    try:
        for attempt in range(100):
            try:
                conn = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if attempt == 99:
                    raise
                time.sleep(0.05)
        replies = conn.makefile("rb")

        def reply():
            line = replies.readline()
            kind, rest = line[:1], line[1:-2]
            if kind == b"$":
                n = int(rest)
                return replies.read(n + 2)[:-2] if n >= 0 else None
            if kind == b"*":
                return [reply() for _ in range(int(rest))]
            if kind == b"-":
                raise RuntimeError(line.decode())
            return rest

        conn.sendall(command("SCRIPT", "LOAD", script))
        sha = reply()
        sealed, start = os.urandom(160), int(time.time() * 1e6)

        def append(i):
            # As crates/chat-redis/src/codec.rs encodes a message: version, id, sender,
            # kind, created µs, has-content, sealed bytes.
            base, id = f"chat:{{{i % THREADS}}}", start + i
            message = struct.pack(">BqqBqB", 1, id, 7, 0, id, 1) + sealed
            return command("EVALSHA", sha, 6, base + ":messages", base + ":ids", base + ":at", base + ":msg",
                           base + ":seq", base + ":hold", TTL_MS, start - TTL_MS * 1000, KEEP, id, id, message, 0)

        for i in range(THREADS * KEEP * 2):  # every thread past its cap before measuring
            conn.sendall(append(i))
            reply()
        first, before = THREADS * KEEP * 2, cpu_ticks(server.pid)
        for i in range(first, first + N, IN_FLIGHT):
            conn.sendall(b"".join(append(i + j) for j in range(IN_FLIGHT)))
            for _ in range(IN_FLIGHT):
                answer = reply()
                if answer != [b"0"]:
                    raise RuntimeError(f"append {i} not stored: {answer}")
        ticks = cpu_ticks(server.pid) - before
        conn.sendall(command("ZCARD", "chat:{0}:messages"))
        held = reply().decode()
        print(f"{name}: redis-server {ticks / os.sysconf('SC_CLK_TCK') / N * 1e6:.1f} µs per append "
              f"({N} appends; a thread holds {held})")
    finally:
        server.kill()
        server.wait()


for rep in range(REPS):
    measure("APPEND", APPEND)
    for path in sys.argv[1:]:
        measure(os.path.basename(path), open(path).read())
