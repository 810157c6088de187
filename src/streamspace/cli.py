"""`streamspace` command line: api | up | agent | agent-health | openapi | db upgrade |
users create | users unlock | agents create | backup | restore."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn

from streamspace.config import load_settings
from streamspace.errors import ConfigError, StreamSpaceError

T = TypeVar("T")
app = typer.Typer(
    help="StreamSpace: stream containerised desktop apps to the browser.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
users_app = typer.Typer(help="User management.", no_args_is_help=True)
agents_app = typer.Typer(help="Agent management.", no_args_is_help=True)
orgs_app = typer.Typer(
    help="Orgs: each with its own users, templates and sessions.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(orgs_app, name="orgs")
app.add_typer(agents_app, name="agents")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _settings(**overrides: object):  # type: ignore[no-untyped-def]
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise _fail(exc.message) from exc


def _serve(settings) -> None:  # type: ignore[no-untyped-def]
    from streamspace.control_plane.app import create_app
    from streamspace.control_plane.asgi.logs import configure_logging
    from streamspace.control_plane.server import server_config

    configure_logging(fmt=settings.log_format, level=settings.log_level, pod_name=settings.pod_name)
    uvicorn.Server(server_config(create_app(settings), settings)).run()


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address [STREAMSPACE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [STREAMSPACE_PORT]")] = None,
) -> None:
    """Serve the control plane (one replica; settings from the environment)."""
    _serve(_settings(host=host, port=port))


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Bind address [STREAMSPACE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [STREAMSPACE_PORT]")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory [STREAMSPACE_DATA_DIR]")
    ] = None,
) -> None:
    """Run everything in one process: SQLite in the data dir, in-memory hub, the UI."""
    from streamspace.control_plane.asgi.logs import configure_logging
    from streamspace.control_plane.db.files import secure_data_dir
    from streamspace.private_files import write_private

    base = _settings(host=host, port=port, data_dir=data_dir)
    configure_logging(fmt=base.log_format, level=base.log_level, pod_name=base.pod_name)
    password = base.admin_password
    generated = password is None
    pw_file = base.data_dir / "admin-password"
    secure_data_dir(base.data_dir, create=True)
    if generated and pw_file.exists():
        password = pw_file.read_text().strip()
    elif generated:
        password = secrets.token_urlsafe(12)
        write_private(pw_file, password + "\n")
    ui_dir = base.ui_dir or _default_ui_dir()
    settings = base.model_copy(
        update={"admin_password": password, "embedded": True, "ui_dir": ui_dir}
    )
    url = f"http://{settings.host}:{settings.port}"
    typer.secho(f"StreamSpace is starting at {url}", fg=typer.colors.GREEN, bold=True)
    typer.echo(
        f"  admin login: {settings.admin_username} / "
        f"{password if generated else '(STREAMSPACE_ADMIN_PASSWORD)'}"
    )
    if generated:
        typer.echo(f"  (password kept in {pw_file}; it applies when the admin is first created)")
    typer.echo(f"  API docs: {url}/api/docs   data: {settings.data_dir.resolve()}")
    from streamspace.embedded import serve_embedded

    with _runner() as runner:
        runner.run(
            serve_embedded(
                settings, with_agent=os.environ.get("STREAMSPACE_LOCAL_AGENT", "1") != "0"
            )
        )


def _runner() -> asyncio.Runner:
    """An event loop for the long-running processes: uvloop where it exists (as uvicorn picks
    for `streamspace api`), else asyncio's own. The agent relays VNC bytes, and uvloop's
    transports cost it about a fifth less CPU per MB than the selector loop."""
    try:
        import uvloop
    except ImportError:  # not built for every platform (Windows, PyPy)
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _default_ui_dir() -> Path | None:
    candidate = Path(__file__).resolve().parents[2] / "ui" / "dist"
    return candidate if candidate.is_dir() else None


@app.command()
def openapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")
    ] = None,
) -> None:
    """Print the control plane's OpenAPI document (the UI's types are generated from it)."""
    import json

    from streamspace.control_plane.app import create_app

    text = json.dumps(create_app(_settings()).openapi(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


@app.command()
def agent() -> None:
    """Run an agent (settings from AGENT_ID, CONTROL_PLANE_URL, PLATFORM, REGION, ...)."""
    from streamspace.agents.service import run_agent
    from streamspace.config import load_agent_settings
    from streamspace.control_plane.asgi.logs import configure_logging

    try:
        settings = load_agent_settings()
    except ConfigError as exc:
        raise _fail(exc.message) from exc
    configure_logging(
        fmt=os.environ.get("LOG_FORMAT", "text"),
        level=os.environ.get("LOG_LEVEL", "INFO"),
        pod_name=settings.pod_name,
    )
    try:
        with _runner() as runner:
            runner.run(run_agent(settings))
    except StreamSpaceError as exc:
        raise _fail(exc.message) from exc


@app.command("agent-health")
def agent_health(
    alive_file: Annotated[
        Path | None,
        typer.Option("--file", envvar="AGENT_ALIVE_FILE", help="The agent's AGENT_ALIVE_FILE"),
    ] = None,
    max_age: Annotated[float, typer.Option(help="Seconds since the last touch")] = 30.0,
) -> None:
    """Exit 0 while the agent on this host touches AGENT_ALIVE_FILE (a container health check)."""
    from streamspace.agents.liveness import is_alive

    if alive_file is None:
        raise _fail("set AGENT_ALIVE_FILE (or --file) to the file the agent touches")
    if not is_alive(alive_file, max_age=max_age):
        typer.echo(f"unhealthy: {alive_file} not touched in the last {max_age:g} s", err=True)
        raise typer.Exit(1)
    typer.echo("ok")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the latest schema."""
    from streamspace.control_plane.db import migrate
    from streamspace.control_plane.db.engine import create_engine

    settings = _settings()

    async def run() -> None:
        engine = create_engine(settings)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo("database is at the latest schema")


async def _with_db(settings: Any, fn: Callable[[Any], Awaitable[T]]) -> T:
    from streamspace.control_plane.db import migrate
    from streamspace.control_plane.db.engine import create_engine, session_factory

    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
        return await fn(session_factory(engine))
    finally:
        await engine.dispose()


@users_app.command("create")
def users_create(
    username: str,
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role")] = False,
    platform_admin: Annotated[
        bool,
        typer.Option("--platform-admin", help="An admin who also runs agents, replicas and orgs"),
    ] = False,
    org: Annotated[
        str | None, typer.Option(help="The user's org (default: the default org)")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="STREAMSPACE_NEW_USER_PASSWORD", help="Password (prompted if unset)"),
    ] = None,
) -> None:
    """Create a local user (in the default org unless --org says another)."""
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    role = "admin" if admin or platform_admin else "user"
    settings = _settings()
    try:
        asyncio.run(
            _with_db(
                settings,
                lambda db: _create_user(
                    db,
                    username=username,
                    password=password,
                    role=role,
                    org=org,
                    platform_admin=platform_admin,
                ),
            )
        )
    except StreamSpaceError as exc:
        raise _fail(exc.message) from exc
    kind = "platform admin" if platform_admin else role
    typer.echo(f"created {kind} {username}" + (f" in org {org}" if org else ""))


async def _create_user(
    db: Any, *, username: str, password: str, role: str, org: str | None, platform_admin: bool
) -> None:
    from streamspace.control_plane.services.users import create_user, org_by_name

    org_id = (await org_by_name(db, name=org)).id if org else None
    await create_user(
        db,
        username=username,
        password=password,
        role=role,
        org_id=org_id,
        platform_admin=platform_admin,
        actor="cli",
    )


@orgs_app.command("create")
def orgs_create(
    name: str,
    admin: Annotated[str, typer.Option("--admin", help="Username of the org's first admin")],
    password: Annotated[
        str | None,
        typer.Option(
            envvar="STREAMSPACE_NEW_USER_PASSWORD", help="The admin's password (prompted if unset)"
        ),
    ] = None,
) -> None:
    """Create an org and its first admin, who then manages the org's users, templates and
    sessions (not agents or replicas: those are the platform admins')."""
    from streamspace.control_plane.services.users import create_org

    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    settings = _settings()
    try:
        asyncio.run(
            _with_db(
                settings,
                lambda db: create_org(
                    db, name=name, admin_username=admin, admin_password=password, actor="cli"
                ),
            )
        )
    except StreamSpaceError as exc:
        raise _fail(exc.message) from exc
    typer.echo(f"created org {name} with admin {admin}")


@orgs_app.command("list")
def orgs_list() -> None:
    """Every org and its number of users."""
    from streamspace.control_plane.services.users import list_orgs

    rows = asyncio.run(_with_db(_settings(), list_orgs))
    for org, count in rows:
        typer.echo(f"{org.name}\t{count} user{'s' if count != 1 else ''}")


@users_app.command("set-password")
def users_set_password(
    username: str,
    password: Annotated[
        str | None,
        typer.Option(envvar="STREAMSPACE_NEW_USER_PASSWORD", help="Password (prompted if unset)"),
    ] = None,
) -> None:
    """Give a user a new password and end all their logins (their open sockets close within
    a heartbeat interval, when each replica next checks the logins holding them)."""
    if password is None:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    settings = _settings()
    try:
        asyncio.run(_with_db(settings, lambda db: _set_password(settings, db, username, password)))
    except StreamSpaceError as exc:
        raise _fail(exc.message) from exc
    typer.echo(f"set the password of {username}; their logins have ended")


async def _set_password(settings: Any, db: Any, username: str, password: str) -> None:
    from streamspace.control_plane.app import auth_stores
    from streamspace.control_plane.services.users import get_user_by_name, set_password

    user = await get_user_by_name(db, username=username)
    await set_password(db, user_id=user.id, password=password)
    # the replicas' own store (with Redis: the cached logins marked revoked too); their login
    # re-check then closes the sockets
    store, _, client = await auth_stores(settings, db, db)
    try:
        await store.revoke_user(user_id=user.id)
    finally:
        await store.close()
        if client is not None:
            await client.aclose()


@users_app.command("reset-mfa")
def users_reset_mfa(username: str) -> None:
    """Remove a user's second factor (TOTP app and recovery codes), audited as mfa.reset by
    `cli`: for an admin locked out with no other admin to reset it from the Users page. Their
    logins stay; they enrol again at their next sign-in if their org requires a factor."""
    from streamspace.control_plane.services.mfa import reset_by_operator

    settings = _settings()
    try:
        had = asyncio.run(_with_db(settings, lambda db: reset_by_operator(db, username=username)))
    except StreamSpaceError as exc:
        raise _fail(exc.message) from exc
    typer.echo(
        f"reset the second factor of {username}" if had else f"{username} had no second factor"
    )


@users_app.command("unlock")
def users_unlock(username: str) -> None:
    """Clear a user's failed-login lockout on every replica (needs Redis: without it the
    counters live in each API process; use the admin API, DELETE /api/v1/users/{id}/lockout)."""
    settings = _settings()
    if not settings.redis_enabled:
        raise _fail(
            "login lockouts are kept in each API process when Redis is off: clear it with"
            " the Users page (DELETE /api/v1/users/{id}/lockout) or wait out the window"
        )
    try:
        asyncio.run(_with_db(settings, lambda db: _unlock(settings, db, username=username)))
    except StreamSpaceError as exc:
        raise _fail(exc.message) from exc
    typer.echo(f"cleared the login lockout of {username}")


async def _unlock(settings: Any, db: Any, *, username: str) -> None:
    from streamspace.control_plane.app import redis_client
    from streamspace.control_plane.auth.throttle import RedisLoginThrottle, user_key
    from streamspace.control_plane.services.users import get_user_by_name

    await get_user_by_name(db, username=username)
    client = redis_client(settings, 0)
    try:
        throttle = RedisLoginThrottle(
            client=client,
            max_failures=settings.login_max_failures,
            window=settings.login_failure_window,
        )
        await throttle.reset_shared(keys=[user_key(username)])
    finally:
        await client.aclose()


@agents_app.command("create")
def agents_create(
    agent_id: str,
    platform: Annotated[str, typer.Option(help="docker or kubernetes")] = "docker",
    region: Annotated[str, typer.Option()] = "default",
    max_sessions: Annotated[int, typer.Option()] = 20,
) -> None:
    """Pre-create an approved agent and print its key once (for unattended installs)."""
    from streamspace.control_plane.services.agents import AgentService

    settings = _settings()

    async def make(db):  # type: ignore[no-untyped-def]
        service = AgentService(sessions=db, bootstrap_key=None, announce=None)
        return await service.create_with_key(
            agent_id=agent_id,
            platform=platform,
            region=region,
            max_sessions=max_sessions,
            admin="cli",
        )

    try:
        key = asyncio.run(_with_db(settings, make))
    except StreamSpaceError as exc:
        raise _fail(exc.message) from exc
    typer.echo(f"agent {agent_id} created and approved. Its key (shown once):\n{key}")


HELPER_IMAGE = "streamspace/terminal:bookworm"  # the session image images/build.sh makes
DataDir = Annotated[Path | None, typer.Option(help="Data directory [STREAMSPACE_DATA_DIR]")]
DockerUrl = Annotated[
    str | None, typer.Option(help="Docker engine for the home volumes [DOCKER_HOST]")
]
HelperImage = Annotated[
    str,
    typer.Option(help="A local image the home volumes are mounted in (created, never run)"),
]


@app.command()
def backup(
    archive: Annotated[Path, typer.Argument(help="The archive to write (.tar.gz)")],
    database: Annotated[
        bool, typer.Option(help="The database and the data directory's secrets")
    ] = True,
    homes: Annotated[
        bool, typer.Option(help="Also the users' home volumes on this Docker engine")
    ] = False,
    homes_agent: Annotated[
        str | None, typer.Option(help="Only the home volumes of this agent (its AGENT_ID)")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing archive")] = False,
    data_dir: DataDir = None,
    docker_url: DockerUrl = None,
    helper_image: HelperImage = HELPER_IMAGE,
) -> None:
    """Back up the installation that DATABASE_URL / STREAMSPACE_DATA_DIR name, while it runs."""
    from streamspace.backup.progress import BarProgress
    from streamspace.backup.take import HomesSource, take_backup

    settings = _settings(data_dir=data_dir)
    source = HomesSource(helper_image, docker_url, homes_agent) if homes else None
    with _reported(), BarProgress() as progress:
        result = asyncio.run(
            take_backup(
                settings,
                archive=archive,
                database=database,
                homes=source,
                overwrite=overwrite,
                progress=progress,
            )
        )
    manifest = result.manifest
    parts = []
    if manifest.database is not None:
        rows = sum(t.rows for t in manifest.database.tables)
        parts.append(f"{rows} rows at schema {manifest.database.revision}")
        parts.append(f"{len(manifest.secrets)} secret files")
    if homes:
        parts.append(f"{len(manifest.homes)} home volumes")
    typer.echo(f"backed up {', '.join(parts)} to {archive} ({result.size:,} bytes)")


@app.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="An archive `streamspace backup` wrote")],
    replace: Annotated[
        bool, typer.Option(help="Drop what the target database holds; overwrite secret files")
    ] = False,
    database: Annotated[
        bool, typer.Option(help="The database and the data directory's secrets")
    ] = True,
    homes: Annotated[
        bool,
        typer.Option(help="The home volumes, on this Docker engine (when the archive has them)"),
    ] = True,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where the archive is unpacked meanwhile [TMPDIR]")
    ] = None,
    data_dir: DataDir = None,
    docker_url: DockerUrl = None,
    helper_image: HelperImage = HELPER_IMAGE,
) -> None:
    """Restore a backup into the installation DATABASE_URL / STREAMSPACE_DATA_DIR name (stopped)."""
    from streamspace.backup.progress import BarProgress
    from streamspace.backup.restore import HomesTarget, RestoreScope, restore_backup

    settings = _settings(data_dir=data_dir)
    target = HomesTarget(helper_image, docker_url) if homes else None
    scope = RestoreScope(database=database, homes=target, replace=replace)
    with _reported(), BarProgress() as progress:
        manifest = asyncio.run(
            restore_backup(
                settings, archive=archive, scope=scope, work_dir=work_dir, progress=progress
            )
        )
    parts = []
    if database and manifest.database is not None:
        rows = sum(t.rows for t in manifest.database.tables)
        parts.append(f"{rows} rows (taken on {manifest.database.dialect})")
        parts.append(f"{len(manifest.secrets)} secret files")
    if target is not None:
        parts.append(f"{len(manifest.homes)} home volumes")
    typer.echo(f"restored {', '.join(parts) or 'nothing'} from the backup of {manifest.created_at}")


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Errors of backup and restore as one line, no traceback."""
    try:
        yield
    except StreamSpaceError as exc:
        raise _fail(exc.message) from exc
    except OSError as exc:
        raise _fail(str(exc)) from exc


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
