"""TOTP codes (RFC 6238: SHA-1, 6 digits, 30 s steps, what authenticator apps use), recovery
codes and the cipher that keeps TOTP secrets encrypted at rest. Pure: no database, no clock
of its own (callers pass the time)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streamspace.errors import Unavailable

STEP = 30  # seconds per code
WINDOW = 1  # steps either side of now still accepted: a phone's clock a little off
RECOVERY_CODES = 10
# 16 characters of 32 (no 0/1/o/l to misread): 80 bits each
_RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    return pyotp.random_base32()  # 32 base32 characters: 160 bits, RFC 4226's recommendation


def time_step(now: float) -> int:
    return int(now // STEP)


def code_at(secret: str, *, step: int) -> str:
    return pyotp.TOTP(secret, interval=STEP).at(step * STEP)


def matching_step(secret: str, *, code: str, now: float, after: int) -> int | None:
    """The time step within WINDOW of `now` whose code this is, if that step is later than
    `after` (the last one accepted: a code is never accepted twice); else None."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    current = time_step(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if step > after and hmac.compare_digest(code_at(secret, step=step), code):
            return step
    return None


def provisioning_uri(secret: str, *, username: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg_data_uri(uri: str) -> str:
    """The URI as a QR code: an SVG in a data: URI, shown as an image (the UI's CSP allows
    data: images, and an image cannot run script)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def new_recovery_codes() -> list[str]:
    """RECOVERY_CODES codes of four groups of four, e.g. `k3m9-x2pa-7qrt-bn4e`."""
    return ["-".join(_group() for _ in range(4)) for _ in range(RECOVERY_CODES)]


def _group() -> str:
    return "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(4))


def hash_recovery_code(code: str) -> str:
    """SHA-256 of the code without dashes or spaces, lowercased. A plain hash is enough: the
    codes are random with 80 bits each, so a leaked hash cannot be searched back to its code
    the way a password's can; a slow or keyed hash would add nothing but a key to keep."""
    normal = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(normal.encode()).hexdigest()


class SecretCipher:
    """Encrypts TOTP secrets (Fernet: AES-128-CBC + HMAC-SHA256) with a key derived from the
    MFA key setting, so a copy of the database alone does not give away the factors."""

    def __init__(self, *, key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"streamspace-mfa-secret"
        ).derive(key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, stored: str) -> str:
        try:
            return self._fernet.decrypt(stored.encode()).decode()
        except InvalidToken as exc:
            raise Unavailable(
                "this second factor was encrypted with another MFA key (STREAMSPACE_MFA_KEY"
                " changed?): restore the key, or an admin resets the factor",
                code="mfa_key_mismatch",
            ) from exc
