"""LDAP sign-in: find the user with the service account (search base and filter, the username
escaped), check their password with a simple bind as them over LDAPS or StartTLS, read their
groups. ldap3 is synchronous: each sign-in runs in a worker thread with socket timeouts.
Knows nothing of users in the database (services/identities)."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # ldap3 2.9 imports names pyasn1 0.6 deprecated (tagMap, typeMap): harmless, not ours to fix
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldap3 import NONE, SUBTREE, Connection, Server, Tls  # type: ignore[import-untyped]
    from ldap3.core.exceptions import LDAPException  # type: ignore[import-untyped]
    from ldap3.utils.conv import escape_filter_chars  # type: ignore[import-untyped]

from streamspace.config import ControlPlaneSettings
from streamspace.errors import Unavailable


@dataclass(frozen=True, kw_only=True)
class DirectoryUser:
    dn: str
    username: str
    email: str | None
    display_name: str | None
    groups: frozenset[str]  # DNs and cn values, lowercased
    is_admin: bool


@dataclass(frozen=True, kw_only=True)
class LdapConfig:
    url: str
    start_tls: bool
    ca_file: Path | None
    bind_dn: str
    bind_password: str | None
    user_base: str
    user_filter: str
    username_attribute: str
    email_attribute: str
    name_attribute: str
    group_base: str
    group_filter: str
    admin_groups: frozenset[str]  # lowercased
    timeout: float

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings) -> LdapConfig | None:
        if not settings.ldap_url:
            return None
        password = settings.ldap_bind_password
        return cls(
            url=settings.ldap_url,
            start_tls=settings.ldap_start_tls,
            ca_file=settings.ldap_ca_file,
            bind_dn=settings.ldap_bind_dn,
            bind_password=password.get_secret_value() if password else None,
            user_base=settings.ldap_user_base,
            user_filter=settings.ldap_user_filter,
            username_attribute=settings.ldap_username_attribute,
            email_attribute=settings.ldap_email_attribute,
            name_attribute=settings.ldap_name_attribute,
            group_base=settings.ldap_group_base,
            group_filter=settings.ldap_group_filter,
            admin_groups=frozenset(
                g.strip().lower() for g in settings.ldap_admin_groups.split(";") if g.strip()
            ),
            timeout=settings.ldap_timeout,
        )


class _CheckedTls(Tls):  # type: ignore[misc]
    """TLS with the ssl module's own checks of the certificate and the host name during the
    handshake; ldap3's Tls checks the name afterwards with ssl.match_hostname, deprecated
    (removed in Python 3.12)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=connection.server.host,
        )


class LdapDirectory:
    def __init__(self, config: LdapConfig) -> None:
        self._config = config
        context = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file else None
        )  # certificate and host name checked, TLS 1.2 or later
        tls = _CheckedTls(context)
        self._server = Server(
            config.url,
            use_ssl=config.url.startswith("ldaps://"),
            tls=tls,
            connect_timeout=max(1, int(config.timeout)),  # ldap3 packs it as an int
            get_info=NONE,
        )

    async def authenticate(self, *, username: str, password: str) -> DirectoryUser | None:
        """The directory's user when the password is theirs; None when no user matches the
        filter (exactly one must) or the password is wrong. Unavailable when the directory
        cannot be reached or refuses the service account."""
        if not password:  # an empty password is an unauthenticated bind, which "succeeds"
            return None
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._authenticate, username, password),
                timeout=self._config.timeout * 4,  # connect, StartTLS, bind, search
            )
        except TimeoutError as exc:
            raise Unavailable("the LDAP directory did not answer in time") from exc
        except LDAPException as exc:
            raise Unavailable(f"the LDAP directory failed: {exc}") from exc

    def _connection(self, *, user: str | None, password: str | None) -> Connection:
        conn = Connection(
            self._server,
            user=user,
            password=password,
            receive_timeout=max(1, int(self._config.timeout)),
            raise_exceptions=False,
        )
        conn.open()
        if self._config.start_tls and not self._config.url.startswith("ldaps://"):
            conn.start_tls()
        return conn

    def _authenticate(self, username: str, password: str) -> DirectoryUser | None:
        cfg = self._config
        service = self._connection(user=cfg.bind_dn or None, password=cfg.bind_password)
        try:
            if not service.bind():
                raise Unavailable(f"the LDAP directory refused LDAP_BIND_DN: {service.result}")
            found = self._find(service, username)
            if found is None:
                return None
            if not self._password_ok(found.dn, password):
                return None
            groups = self._groups(service, dn=found.dn, username=username)
        finally:
            service.unbind()
        is_admin = bool(groups & cfg.admin_groups)
        return DirectoryUser(
            dn=found.dn,
            username=found.username,
            email=found.email,
            display_name=found.display_name,
            groups=groups,
            is_admin=is_admin,
        )

    def _find(self, conn: Connection, username: str) -> DirectoryUser | None:
        cfg = self._config
        query = cfg.user_filter.replace("{username}", escape_filter_chars(username))
        attributes = [cfg.username_attribute, cfg.email_attribute, cfg.name_attribute]
        conn.search(cfg.user_base, query, search_scope=SUBTREE, attributes=attributes)
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        if len(entries) != 1:
            return None
        attrs = entries[0].get("attributes", {})
        return DirectoryUser(
            dn=entries[0]["dn"],
            username=_first(attrs.get(cfg.username_attribute)) or username,
            email=_first(attrs.get(cfg.email_attribute)),
            display_name=_first(attrs.get(cfg.name_attribute)),
            groups=frozenset(),
            is_admin=False,
        )

    def _password_ok(self, dn: str, password: str) -> bool:
        conn = self._connection(user=dn, password=password)
        try:
            return bool(conn.bind())
        finally:
            conn.unbind()

    def _groups(self, conn: Connection, *, dn: str, username: str) -> frozenset[str]:
        cfg = self._config
        if not cfg.group_base:
            return frozenset()
        query = cfg.group_filter.replace("{dn}", escape_filter_chars(dn)).replace(
            "{username}", escape_filter_chars(username)
        )
        conn.search(cfg.group_base, query, search_scope=SUBTREE, attributes=["cn"])
        names: set[str] = set()
        for entry in conn.response or []:
            if entry.get("type") != "searchResEntry":
                continue
            names.add(entry["dn"].lower())
            cn = _first(entry.get("attributes", {}).get("cn"))
            if cn:
                names.add(cn.lower())
        return frozenset(names)


def _first(value: object) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value else None
