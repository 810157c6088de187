"""TOTP codes on explicit times: the accepted window, replays, recovery codes, the cipher."""

from __future__ import annotations

import pyotp
import pytest

from streamspace.control_plane.auth import totp
from streamspace.errors import Unavailable

NOW = 1_765_000_000.0  # any instant: the codes are computed for it, not for the wall clock


def app_code(secret: str, at: float) -> str:
    """What an authenticator app shows at `at` (pyotp, not our own code path)."""
    return pyotp.TOTP(secret).at(at)


def test_codes_of_now_and_one_step_either_side_are_accepted() -> None:
    secret = totp.new_secret()
    step = totp.time_step(NOW)
    for offset in (-1, 0, 1):
        code = app_code(secret, NOW + offset * totp.STEP)
        assert totp.matching_step(secret, code=code, now=NOW, after=0) == step + offset


def test_codes_two_steps_away_are_refused() -> None:
    secret = totp.new_secret()
    for offset in (-2, 2, -10):
        code = app_code(secret, NOW + offset * totp.STEP)
        assert totp.matching_step(secret, code=code, now=NOW, after=0) is None


def test_a_code_is_never_accepted_twice_nor_an_older_one() -> None:
    secret = totp.new_secret()
    code = app_code(secret, NOW)
    step = totp.matching_step(secret, code=code, now=NOW, after=0)
    assert step is not None
    assert totp.matching_step(secret, code=code, now=NOW, after=step) is None
    older = app_code(secret, NOW - totp.STEP)
    assert totp.matching_step(secret, code=older, now=NOW, after=step) is None
    newer = app_code(secret, NOW + totp.STEP)
    assert totp.matching_step(secret, code=newer, now=NOW, after=step) == step + 1


def test_malformed_codes_are_refused() -> None:
    secret = totp.new_secret()
    for code in ("", "12345", "1234567", "abcdef"):
        assert totp.matching_step(secret, code=code, now=NOW, after=0) is None
    spaced = app_code(secret, NOW)
    assert totp.matching_step(secret, code=f"{spaced[:3]} {spaced[3:]}", now=NOW, after=0)


def test_the_otpauth_uri_is_what_an_app_reads() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, username="alice", issuer="Acme Desktops")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP) and parsed.secret == secret
    assert parsed.name == "alice" and parsed.issuer == "Acme Desktops"
    assert totp.qr_svg_data_uri(uri).startswith("data:image/svg+xml")


def test_recovery_codes_are_distinct_and_hash_however_typed() -> None:
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == totp.RECOVERY_CODES
    code = codes[0]
    typed = f"  {code.upper().replace('-', ' ')} "
    assert totp.hash_recovery_code(typed) == totp.hash_recovery_code(code)
    assert totp.hash_recovery_code(codes[1]) != totp.hash_recovery_code(code)


def test_secrets_are_encrypted_and_need_their_key() -> None:
    secret = totp.new_secret()
    stored = totp.SecretCipher(key="k" * 32).encrypt(secret)
    assert secret not in stored
    assert totp.SecretCipher(key="k" * 32).decrypt(stored) == secret
    with pytest.raises(Unavailable) as caught:
        totp.SecretCipher(key="x" * 32).decrypt(stored)
    assert caught.value.code == "mfa_key_mismatch"
