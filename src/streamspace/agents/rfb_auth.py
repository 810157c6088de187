"""The RFB handshake the agent plays on both sides of a session's VNC connection, as two pure
state machines (bytes in, bytes out; no I/O): `ServerLogin` answers the session's VNC server
as a client holding the session's secret (VNC Authentication), `ViewerGreeting` greets the
viewer as a server that needs no password. After both, the bytes pass through unchanged: the
viewer's ClientInit goes to the server, whose ServerInit comes back (RFC 6143)."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from streamspace.errors import ProtocolError

VERSION = re.compile(rb"RFB (\d{3})\.(\d{3})\n")
VERSION_LENGTH = 12
GREETING = b"RFB 003.008\n"  # what the viewer gets first from an authenticated stream
SECURITY_NONE = 1
SECURITY_VNC_AUTH = 2
CHALLENGE_LENGTH = 16
PASSWORD_LENGTH = 8  # VNC Authentication uses at most 8 bytes of the password
_U32 = struct.Struct(">I")


class RfbError(ProtocolError):
    """The RFB handshake failed; the message says at which step, never with the secret."""

    code = "vnc_handshake_failed"


def new_secret() -> str:
    """A session's VNC secret: 8 printable random characters (48 bits), all that VNC
    Authentication uses. It never leaves the agent and the session's container."""
    return secrets.token_urlsafe(6)


def derived_secret(*, seed: str, session_id: str) -> str:
    """A session's VNC secret derived from the agent's seed (HMAC-SHA256, 48 bits, printed as
    8 URL-safe characters like `new_secret`): every agent replica with the seed finds it
    again without reading it back from anywhere."""
    digest = hmac.new(seed.encode(), f"vnc:{session_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode()


def vnc_des(*, password: bytes, challenge: bytes) -> bytes:
    """VNC Authentication's response: DES-ECB of the challenge, keyed by the password padded
    to 8 bytes with each byte's bits reversed (VNC's d3des numbers key bits the other way)."""
    key = bytes(_reverse_bits(b) for b in password[:PASSWORD_LENGTH].ljust(PASSWORD_LENGTH, b"\0"))
    # TripleDES with K1 = K2 = K3 is single DES (cryptography deprecates passing one 8-byte key).
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


def _reverse_bits(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


def parse_version(data: bytes, *, side: str) -> tuple[int, int]:
    """(3, 3), (3, 7) or (3, 8) from a 12-byte ProtocolVersion; RFC 6143 reads any other
    3.x below 3.7 as 3.3, and anything above 3.8 may be answered as 3.8."""
    match = VERSION.fullmatch(data)
    if match is None:
        raise RfbError(f"the {side} did not send an RFB version (got {data[:12]!r})")
    major, minor = int(match[1]), int(match[2])
    if major != 3:
        return (3, 8) if major > 3 else (3, 3)
    return (3, 8) if minor >= 8 else (3, 7) if minor == 7 else (3, 3)


def version_bytes(version: tuple[int, int]) -> bytes:
    return b"RFB %03d.%03d\n" % version


class _Input:
    """Bytes received and not yet parsed."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, data: bytes | memoryview) -> None:
        self._data += data

    def take(self, count: int) -> bytes | None:
        """The next `count` bytes, or None (and nothing taken) until they have all arrived."""
        if len(self._data) < count:
            return None
        taken = bytes(self._data[:count])
        del self._data[:count]
        return taken

    def rest(self) -> bytes:
        rest = bytes(self._data)
        self._data.clear()
        return rest


class _Login(enum.Enum):
    VERSION = "version"
    TYPE_COUNT = "type count"
    TYPES = "types"
    TYPE_33 = "3.3 type"
    CHALLENGE = "challenge"
    RESULT = "result"
    REASON_LENGTH = "reason length"
    REASON = "reason"
    DONE = "done"


class ServerLogin:
    """The client side of the handshake toward the session's VNC server, up to a successful
    SecurityResult. Feed it what the server sends; send back what `receive` returns. `done`
    once authenticated; the server then waits for the viewer's ClientInit."""

    def __init__(self, *, secret: str) -> None:
        self._password = secret.encode()
        self._input = _Input()
        self._state = _Login.VERSION
        self._version = (3, 8)
        self._count = 0
        self._failure = ""

    @property
    def done(self) -> bool:
        return self._state is _Login.DONE

    def receive(self, data: bytes | memoryview) -> bytes:
        self._input.feed(data)
        out = bytearray()
        while self._state is not _Login.DONE and (step := self._step()) is not None:
            out += step
        return bytes(out)

    def leftover(self) -> bytes:
        """Bytes the server sent after the SecurityResult (none, if it follows the protocol)."""
        return self._input.rest()

    def _step(self) -> bytes | None:
        """Parse one field if it has arrived: the bytes to send (maybe empty), or None."""
        state = self._state
        if state is _Login.VERSION:
            return self._on_version()
        if state is _Login.TYPE_COUNT:
            return self._on_type_count()
        if state is _Login.TYPES:
            return self._on_types()
        if state is _Login.TYPE_33:
            return self._on_type_33()
        if state is _Login.CHALLENGE:
            return self._on_challenge()
        if state is _Login.RESULT:
            return self._on_result()
        if state is _Login.REASON_LENGTH:
            return self._on_reason_length()
        return self._on_reason()

    def _on_version(self) -> bytes | None:
        if (data := self._input.take(VERSION_LENGTH)) is None:
            return None
        self._version = parse_version(data, side="session's VNC server")
        self._state = _Login.TYPE_33 if self._version == (3, 3) else _Login.TYPE_COUNT
        return version_bytes(self._version)

    def _on_type_count(self) -> bytes | None:
        if (data := self._input.take(1)) is None:
            return None
        self._count = data[0]
        if self._count == 0:  # the server refuses the connection and says why
            self._failure = "the session's VNC server refused the connection"
            self._state = _Login.REASON_LENGTH
        else:
            self._state = _Login.TYPES
        return b""

    def _on_types(self) -> bytes | None:
        if (data := self._input.take(self._count)) is None:
            return None
        if SECURITY_VNC_AUTH not in data:
            raise RfbError(
                "the session's VNC server does not offer VNC Authentication "
                f"(it offers security types {list(data)})"
            )
        self._state = _Login.CHALLENGE
        return bytes([SECURITY_VNC_AUTH])

    def _on_type_33(self) -> bytes | None:
        if (data := self._input.take(4)) is None:
            return None
        (kind,) = _U32.unpack(data)
        if kind == 0:
            self._failure = "the session's VNC server refused the connection"
            self._state = _Login.REASON_LENGTH
        elif kind == SECURITY_VNC_AUTH:
            self._state = _Login.CHALLENGE
        else:
            raise RfbError(f"the session's VNC server chose security type {kind}, not VNC Auth")
        return b""

    def _on_challenge(self) -> bytes | None:
        if (challenge := self._input.take(CHALLENGE_LENGTH)) is None:
            return None
        self._state = _Login.RESULT
        return vnc_des(password=self._password, challenge=challenge)

    def _on_result(self) -> bytes | None:
        if (data := self._input.take(4)) is None:
            return None
        if _U32.unpack(data)[0] == 0:
            self._state = _Login.DONE
            return b""
        self._failure = "the session's VNC server rejected the agent's VNC password"
        if self._version < (3, 8):  # no reason string before 3.8
            raise RfbError(self._failure)
        self._state = _Login.REASON_LENGTH
        return b""

    def _on_reason_length(self) -> bytes | None:
        if (data := self._input.take(4)) is None:
            return None
        self._count = min(_U32.unpack(data)[0], 1024)
        self._state = _Login.REASON
        return b""

    def _on_reason(self) -> bytes | None:
        if (data := self._input.take(self._count)) is None:
            return None
        reason = data.decode("utf-8", "replace").strip()
        raise RfbError(f"{self._failure}: {reason}" if reason else self._failure)


class _Greeting(enum.Enum):
    VERSION = "version"
    CHOICE = "choice"
    DONE = "done"


class ViewerGreeting:
    """The server side of the handshake toward the viewer, offering only security type None.
    Send it `GREETING` first; feed it the viewer's bytes; `receive` returns (bytes for the
    viewer, bytes for the VNC server): nothing reaches the server until the viewer is through,
    then everything does, unchanged."""

    def __init__(self) -> None:
        self._input = _Input()
        self._state = _Greeting.VERSION
        self._version = (3, 8)

    @property
    def done(self) -> bool:
        return self._state is _Greeting.DONE

    def receive(self, data: bytes | memoryview) -> tuple[bytes, bytes]:
        if self._state is _Greeting.DONE:
            return b"", bytes(data)
        self._input.feed(data)
        to_viewer = bytearray()
        if self._state is _Greeting.VERSION:
            if (version := self._input.take(VERSION_LENGTH)) is None:
                return b"", b""
            to_viewer += self._on_version(version)
        if self._state is _Greeting.CHOICE:
            if (choice := self._input.take(1)) is None:
                return bytes(to_viewer), b""
            to_viewer += self._on_choice(choice[0])
        return bytes(to_viewer), self._input.rest()

    def _on_version(self, data: bytes) -> bytes:
        self._version = parse_version(data, side="viewer")
        if self._version == (3, 3):  # the server picks: a u32 type, no SecurityResult for None
            self._state = _Greeting.DONE
            return _U32.pack(SECURITY_NONE)
        self._state = _Greeting.CHOICE
        return bytes([1, SECURITY_NONE])

    def _on_choice(self, choice: int) -> bytes:
        if choice != SECURITY_NONE:
            raise RfbError(f"the viewer chose security type {choice}; only None (1) is offered")
        self._state = _Greeting.DONE
        # 3.8 sends a SecurityResult even for None; 3.7 goes straight on to ClientInit
        return _U32.pack(0) if self._version == (3, 8) else b""
