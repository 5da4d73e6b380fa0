"""Connection limits, measured on a real server process (docs/security.md; the figures are in
docs/performance.md, "Connection limits"):

1. idle connections: open N connections that send nothing, then time GETs of a 100 KiB object
   through a normal boto3 client; print the GET latency and what the server holds;
2. stalled downloads: start `--stalled` GETs of a 64 MiB object that never read, and print
   the server's RSS and descriptors before, while they are held, and after the stall timeout
   cut them.

    python tools/bench_connections.py --dir /tmp/bc --idle 1000,2000,4000,8000 --stalled 50

The server runs with `--connections-max` (default 0: derived from its fd limit) and
`--fd-limit` (its RLIMIT_NOFILE, soft and hard; default: this process's hard limit).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from s3free.bench.spawn import spawn_server

ACCESS, SECRET = "BENCHCONNSKEY0001", "bench-conns-secret-0123456789"


def held(pid: int, data_dir: Path) -> tuple[int, int, int]:
    """(all descriptors, sockets, shard files) the server holds."""
    total = sockets = shards = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            total += 1
            sockets += target.startswith("socket:")
            shards += str(data_dir) in target and "/objects/" in target
    return total, sockets, shards


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="scratch directory (emptied)")
    ap.add_argument("--idle", default="500,1000,2000,4000", help="idle connection counts")
    ap.add_argument("--stalled", type=int, default=50)
    ap.add_argument("--gets", type=int, default=30, help="GETs timed per idle level")
    ap.add_argument("--connections-max", type=int, default=0)
    ap.add_argument("--fd-limit", type=int, default=0)
    ap.add_argument("--stall-timeout-s", type=float, default=10.0)
    args = ap.parse_args()

    levels = [int(n) for n in args.idle.split(",") if n]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the sockets
    fd_limit = args.fd_limit or hard
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)

    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    env = {
        "S3FREE_ACCESS_KEY": ACCESS,
        "S3FREE_SECRET_KEY": SECRET,
        "S3FREE_CONNECTIONS_MAX": str(args.connections_max),
        "S3FREE_STALL_TIMEOUT_S": str(args.stall_timeout_s),
        "S3FREE_IDLE_TIMEOUT_S": "600",
        "S3FREE_SCRUB_INTERVAL_S": "0",
    }
    argv = ["--data-dir", str(root), "--listen", "127.0.0.1:0"]
    proc, endpoint, output = spawn_server(argv, env, 60, preexec_fn=preexec)
    try:
        ready = next(line for line in output if "s3free ready" in line)
        print(ready.strip())
        host, port = urlsplit(endpoint).hostname, urlsplit(endpoint).port
        s3 = client(endpoint)
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="small", Body=os.urandom(100 * 1024))
        s3.put_object(Bucket="bench", Key="big", Body=os.urandom(64 * 1024 * 1024))
        print(f"{'idle opened':>11} {'server sockets':>14} {'GET p50 ms':>10} {'GET max ms':>10}")
        socks: list[socket.socket] = []
        for level in levels:
            while len(socks) < level:
                try:
                    socks.append(socket.create_connection((host, port), timeout=30))
                except OSError as exc:
                    print(f"  connect {len(socks) + 1} failed: {exc}")
                    break
            time.sleep(1.0)
            times = []
            for _ in range(args.gets):
                start = time.perf_counter()
                s3.get_object(Bucket="bench", Key="small")["Body"].read()
                times.append((time.perf_counter() - start) * 1000)
            _, sockets, _ = held(proc.pid, root)
            print(
                f"{len(socks):>11} {sockets:>14} {statistics.median(times):>10.1f} "
                f"{max(times):>10.1f}"
            )
        for s in socks:
            s.close()
        socks.clear()
        time.sleep(1.0)

        url = s3.generate_presigned_url("get_object", Params={"Bucket": "bench", "Key": "big"})
        target = url[len(endpoint) :]
        before = rss_mib(proc.pid), held(proc.pid, root)
        for _ in range(args.stalled):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect((host, port))
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            socks.append(s)
        time.sleep(min(3.0, args.stall_timeout_s / 2))
        during = rss_mib(proc.pid), held(proc.pid, root)
        deadline = time.monotonic() + args.stall_timeout_s + 60
        while held(proc.pid, root)[2] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        after = rss_mib(proc.pid), held(proc.pid, root)
        for s in socks:
            s.close()
        print(f"{args.stalled} stalled 64 MiB GETs (stall timeout {args.stall_timeout_s:g} s):")
        for name, (rss, (fds, sockets, shards)) in (
            ("before", before),
            ("held", during),
            ("after cut", after),
        ):
            print(
                f"  {name:>9}: RSS {rss:7.1f} MiB, {fds} fds ({sockets} sockets, "
                f"{shards} shard files)"
            )
    finally:
        proc.terminate()
        proc.wait(30)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    main()
