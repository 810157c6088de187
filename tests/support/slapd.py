"""A real LDAP directory for the SSO tests: Debian's slapd in a temp dir on loopback ports, with
a CA and server certificate made for it (LDAPS on one port, StartTLS on the other), a service
account, people and groups loaded with slapadd before it starts."""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.docker import unavailable
from tests.support.processes import Proc, free_port, wait_until

SUFFIX = "dc=example,dc=com"
READER_DN, READER_PASSWORD = f"cn=reader,{SUFFIX}", "reader-pass-123"
PEOPLE, GROUPS = f"ou=people,{SUFFIX}", f"ou=groups,{SUFFIX}"
ADMINS_GROUP = f"cn=streamspace-admins,{GROUPS}"

# uid: (password, employeeType): the filter admits staff only
PEOPLE_ENTRIES = {
    "alice": ("alice-pass-123", "staff"),
    "bob": ("bob-pass-123", "staff"),
    "carol": ("carol-pass-123", "contractor"),
    "admin": ("directory-admin-pass", "staff"),  # the same name as the local admin
}
ADMINS = ["alice"]


def _ldif() -> str:
    blocks = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example",
        f"dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: reader\nuserPassword: {READER_PASSWORD}",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
    ]
    for uid, (password, kind) in PEOPLE_ENTRIES.items():
        blocks.append(
            f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid.title()}"
            f" Example\nsn: Example\nmail: {uid}@example.com\nemployeeType: {kind}\n"
            f"userPassword: {password}"
        )
    members = "\n".join(f"member: uid={uid},{PEOPLE}" for uid in ADMINS)
    blocks.append(
        f"dn: {ADMINS_GROUP}\nobjectClass: groupOfNames\ncn: streamspace-admins\n{members}"
    )
    return "\n\n".join(blocks) + "\n"


def _certificates(directory: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test LDAP CA",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip


@dataclass
class Slapd:
    directory: Path
    port: int = field(default_factory=free_port)  # ldap://, StartTLS
    tls_port: int = field(default_factory=free_port)  # ldaps://
    proc: Proc | None = None

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def start(self) -> Slapd:
        slapd = shutil.which("slapd") or "/usr/sbin/slapd"
        if not Path(slapd).exists():
            unavailable("slapd is not installed (scripts/test-services.sh installs slapd)")
        d = self.directory
        (d / "data").mkdir(parents=True)
        _certificates(d)
        (d / "slapd.conf").write_text(
            "\n".join(
                [
                    *(
                        f"include /etc/ldap/schema/{s}.schema"
                        for s in ("core", "cosine", "inetorgperson")
                    ),
                    "modulepath /usr/lib/ldap",
                    "moduleload back_mdb",
                    f"pidfile {d}/slapd.pid",
                    f"TLSCACertificateFile {d}/ca.pem",
                    f"TLSCertificateFile {d}/server.pem",
                    f"TLSCertificateKeyFile {d}/server.key",
                    "database mdb",
                    f'suffix "{SUFFIX}"',
                    f'rootdn "cn=root,{SUFFIX}"',
                    "rootpw root-pass-123",
                    f"directory {d}/data",
                    "access to attrs=userPassword by anonymous auth by self read by * none",
                    "access to * by users read by * none",
                ]
            )
            + "\n"
        )
        (d / "data.ldif").write_text(_ldif())
        subprocess.run(
            [shutil.which("slapadd") or "/usr/sbin/slapadd", "-f", str(d / "slapd.conf"),
             "-l", str(d / "data.ldif")],
            check=True,
            capture_output=True,
        )  # fmt: skip
        urls = f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"
        self.proc = Proc(
            name="slapd",
            args=[slapd, "-f", str(d / "slapd.conf"), "-h", urls, "-d", "0"],
            env={},
            log_dir=d,
        )
        self.proc.start()
        wait_until(self._listening, timeout=20, what="slapd's ports")
        return self

    def _listening(self) -> bool:
        assert self.proc is not None
        if not self.proc.alive:
            raise RuntimeError(f"slapd exited:\n{self.proc.log()[-3000:]}")
        try:
            for port in (self.port, self.tls_port):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def settings(self, *, mode: str) -> dict[str, object]:
        """The control plane's settings for this directory, over `ldaps` or `starttls`."""
        url = (
            f"ldaps://localhost:{self.tls_port}"
            if mode == "ldaps"
            else f"ldap://localhost:{self.port}"
        )
        return {
            "ldap_url": url,
            "ldap_start_tls": mode == "starttls",
            "ldap_ca_file": self.ca_file,
            "ldap_bind_dn": READER_DN,
            "ldap_bind_password": READER_PASSWORD,
            "ldap_user_base": PEOPLE,
            "ldap_user_filter": "(&(uid={username})(employeeType=staff))",
            "ldap_group_base": GROUPS,
            "ldap_group_filter": "(member={dn})",
            "ldap_admin_groups": ADMINS_GROUP,
            "ldap_timeout": 5,
        }
