"""Running the server: open the store and users, serve the S3 API, shut down cleanly.

Root credentials come from the access_key / secret_key settings (S3FREE_ACCESS_KEY /
S3FREE_SECRET_KEY, or the config file); when those are unset, a pair is generated once, kept
with the store in <meta dir>.credentials.json (mode 0600, s3free/meta/rootkeys.py) and printed
at the first start. It is written only once the server is up: a start that fails writes nothing.
The server never runs without credentials.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from s3free.admin.api import handle_admin
from s3free.admin.info import IndexRebuilder, attach_admin_ops
from s3free.appkeys import DISKS, HEAL, INFLIGHT, STORE, USERS, Settings
from s3free.config import Config
from s3free.engine import ObjectStore
from s3free.engine.diskmonitor import DiskMonitor, MonitorConfig
from s3free.heal import HealConfig, HealService, attach
from s3free.meta import rootkeys
from s3free.meta.users import ROOT_USER, User, UserStore
from s3free.obs import logs, tracing
from s3free.obs.endpoints import install as install_metrics
from s3free.obs.metrics import Sources
from s3free.reload import Reloader
from s3free.reload import install as install_live
from s3free.s3.app import make_app
from s3free.s3.connguard import (
    ConnectionGuard,
    ConnLimits,
    GuardedRunner,
    limit_accept_errors,
    plan,
    raise_fd_limit,
)
from s3free.s3.request import split_host_bucket
from s3free.storage.devices import describe_shared, shared_devices

log = logging.getLogger(__name__)


@dataclass
class RootCredentials:
    access_key: str
    secret_key: str
    generated: bool  # made now, to be shown to the operator once
    path: Path | None = None  # where they are to be kept (generated, or found at old_path)
    old_path: Path | None = None  # found in the old place, <data dir>/credentials.json


def root_credentials(config: Config, env: Mapping[str, str] | None = None) -> RootCredentials:
    """The root pair: from the settings, else the store's file (or the old one), else a new
    pair. Nothing is written here; `keep_credentials` does that once the server is up."""
    if env is None:
        env = os.environ
    access = config.access_key or env.get("S3FREE_ACCESS_KEY")
    secret = config.secret_key or env.get("S3FREE_SECRET_KEY")
    if access and secret:
        return RootCredentials(access, secret, False)
    if access or secret:
        raise SystemExit("s3free: set both S3FREE_ACCESS_KEY and S3FREE_SECRET_KEY, or neither")
    path = rootkeys.path_for(config.meta_path)
    found = rootkeys.find(config.meta_path, Path(config.data_dir))
    if found is not None:
        (access, secret), where = found
        return RootCredentials(access, secret, False, path, None if where == path else where)
    access, secret = rootkeys.generate()
    return RootCredentials(access, secret, True, path)


def keep_credentials(creds: RootCredentials) -> None:
    """Write a generated pair, or move one found in the old place, to the store's file, and
    tell the operator (the secret is printed only when it was generated now)."""
    if creds.path is None or not (creds.generated or creds.old_path):
        return
    rootkeys.save(creds.path, creds.access_key, creds.secret_key)
    if creds.generated:
        print(
            f"s3free: generated root credentials (stored in {creds.path.absolute()}):\n"
            f"  AWS_ACCESS_KEY_ID={creds.access_key}\n"
            f"  AWS_SECRET_ACCESS_KEY={creds.secret_key}\n"
            "  for s3free disk and admin commands:\n"
            f"  export S3FREE_ACCESS_KEY={creds.access_key} S3FREE_SECRET_KEY={creds.secret_key}",
            flush=True,
        )
        return
    old = creds.old_path
    assert old is not None
    if old.parent.absolute() == creds.path.parent.absolute():
        old.unlink()  # the same store's directory: moved
        log.warning("root credentials moved from %s to %s", old, creds.path)
    else:  # maybe shared by other stores started from that directory: copied
        log.warning(
            "root credentials copied from %s to %s, where this store keeps them now; remove "
            "%s once no other store started from that directory needs it",
            old,
            creds.path,
            old,
        )


@dataclass
class Running:
    runner: web.AppRunner
    store: ObjectStore
    url: str
    monitor: DiskMonitor | None = None
    heal: HealService | None = None
    guard: ConnectionGuard | None = None
    fd_limit: int = 0

    async def close(self, drain_timeout: float = 60.0) -> None:
        """Stop accepting, let requests in flight finish, then close connections and what
        start-up opened, in reverse order (the app's cleanup contexts: connection guard, heal
        service, disk monitor, store). Connections are closed only after the drain: aiohttp
        stops reading request bodies from a connection it is closing."""
        for site in list(self.runner.sites):
            await site.stop()
        if not await self.runner.app[INFLIGHT].drain(drain_timeout):
            log.warning("requests still in flight after %.0f s; closing anyway", drain_timeout)
        await self.runner.cleanup()


def _warn_shared_devices(store: ObjectStore) -> None:
    """Once at start: disks sharing one device fail together (see storage/devices.py)."""
    slots = sorted(store.diskset.slots, key=lambda slot: slot.position)
    roots = [Path(slot.disk.root) for slot in slots]
    groups = shared_devices(roots)
    if groups:
        log.warning("%s", describe_shared(groups, roots))


def _connection_guard(config: Config) -> tuple[ConnectionGuard, int]:
    """Raise the fd limit, derive the connection cap from it; the guard and the fd limit."""
    before, fd_limit = raise_fd_limit()
    if fd_limit != before:
        log.info("file descriptor limit raised from %d to %d", before, fd_limit)
    cap, warning = plan(config.connections_max, fd_limit, len(config.disk_paths))
    if warning:
        log.warning("%s", warning)
    limits = ConnLimits(
        connections_max=cap,
        header_timeout_s=config.header_timeout_s,
        idle_timeout_s=config.idle_timeout_s,
        stall_timeout_s=config.stall_timeout_s,
    )
    return ConnectionGuard(limits), fd_limit


async def start(config: Config, creds: RootCredentials) -> Running:
    """Open the store and everything on it, serve; on any failure close what was opened."""
    guard, fd_limit = _connection_guard(config)
    limit_accept_errors(asyncio.get_running_loop())
    app = build_app(config, creds, guard)
    runner = GuardedRunner(
        app,
        guard,
        access_log_class=logs.AccessLogger,
        access_log=logs.ACCESS,
        shutdown_timeout=60.0,
    )
    try:
        await runner.setup()  # the start-up steps of build_app, in order
        context = None
        if config.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(config.tls_cert, config.tls_key)
        host, port = config.host_port
        site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()  # closes what the steps opened, in reverse order
        raise
    scheme = "https" if context else "http"
    bound_host, bound_port = runner.addresses[0][:2]  # the real port when 0 was asked for
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"{scheme}://{shown}:{bound_port}"
    return Running(runner, app[STORE], url, app[DISKS], app.get(HEAL), guard, fd_limit)


def build_app(config: Config, creds: RootCredentials, guard: ConnectionGuard) -> web.Application:
    """The server's application: S3 with the admin API beside it, and the start-up steps
    (aiohttp cleanup contexts, entered in this order when the runner is set up and left in
    the reverse order at cleanup): store, disk monitor, heal service, users, metrics and
    live settings, connection guard."""
    settings = Settings(region=config.region, domain=config.domain)
    app = make_app(None, None, settings, admin=handle_admin)
    app.middlewares.append(guard.middleware)  # outermost: sees every request

    async def store_step(app: web.Application) -> AsyncIterator[None]:
        k_m = config.k_m
        store = await ObjectStore.open(
            config.disk_paths,
            meta_dir=config.meta_path,
            k=k_m[0] if k_m else None,
            m=k_m[1] if k_m else None,
            block_size=config.block_size,
            io_threads=config.io_threads,
        )
        try:
            _warn_shared_devices(store)
            app[STORE] = store
            # before the heal service copies the index handle
            attach_admin_ops(app, IndexRebuilder(store))
            yield
        finally:
            await store.close()

    async def monitor_step(app: web.Application) -> AsyncIterator[None]:
        probe_s = config.disk_probe_s
        monitor = DiskMonitor(
            app[STORE], MonitorConfig(probe_s=probe_s, cooldown_s=min(30.0, max(1.0, 6 * probe_s)))
        )
        try:
            await monitor.start()
            app[DISKS] = monitor
            yield
        finally:
            await monitor.stop()

    async def heal_step(app: web.Application) -> AsyncIterator[None]:
        heal = await _start_heal(app[STORE], config)
        try:
            app[DISKS].attach_healer(heal)
            app[HEAL] = heal
            yield
        finally:
            await heal.stop()

    async def users_step(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        users = UserStore(
            User(ROOT_USER, creds.access_key, creds.secret_key), store.diskset, store.executor
        )
        await users.load()
        app[USERS] = users
        app[HEAL].record_keepers.append(users.restore_records)
        yield

    async def observe_step(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        install_metrics(
            app,
            Sources(store.diskset, store, app[DISKS], app[HEAL], app[INFLIGHT]),
            token=config.metrics_token,
            bucket_of_host=lambda host: split_host_bucket(host, config.domain),
        )
        install_live(app, config)  # live settings, request limit (s3free/reload.py)
        yield

    async def guard_step(app: web.Application) -> AsyncIterator[None]:
        guard.start()
        try:
            yield
        finally:
            await guard.stop()

    app.cleanup_ctx.extend(
        [store_step, monitor_step, heal_step, users_step, observe_step, guard_step]
    )
    return app


async def _start_heal(store: ObjectStore, config: Config) -> HealService:
    """The heal service: heal-on-read, the repair queue and the scheduled scrub."""
    return await attach(
        store,
        HealConfig(
            scrub_rate_mb_s=config.scrub_rate_mb_s,
            scrub_files_per_s=config.scrub_files_per_s,
            scrub_interval_s=config.scrub_interval_s,
            orphan_grace_s=config.orphan_grace_s,
        ),
    )


def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT; print one line when ready."""
    logs.setup(config)
    for warning in config.warnings:
        log.warning("%s", warning)
    creds = root_credentials(config)
    logs.add_secret(creds.secret_key)
    tracing.setup(config)
    try:
        asyncio.run(_serve(config, creds))
    finally:
        tracing.shutdown()


async def _serve(config: Config, creds: RootCredentials) -> None:
    running = await start(config, creds)
    try:
        keep_credentials(creds)  # only now: a start that failed has written none
    except BaseException:
        await running.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, Reloader(running.runner.app, running.heal).reload)
    ds = running.store.diskset
    online = len(ds.online_slots())
    metrics = "token required" if config.metrics_token else "open to anyone (set metrics_token)"
    cap = running.guard.limits.connections_max if running.guard else 0
    print(
        f"s3free ready: {running.url} ({len(ds.slots)} disks, {online} online, "
        f"RS({ds.k},{ds.m}), region {config.region}; connections max {cap} "
        f"(fd limit {running.fd_limit}); /_s3free/metrics {metrics})",
        flush=True,
    )
    await stop.wait()
    print("s3free: shutting down, finishing requests in flight", flush=True)
    await running.close()
    print("s3free: stopped", flush=True)
