"""The agent's two RFB handshakes as pure state machines: logging into the session's VNC
server with its secret (every server version, refusals, a wrong password) and greeting a
viewer as a server that needs no password (3.3, 3.7 and 3.8 viewers, bad answers)."""

from __future__ import annotations

import struct

import pytest

from streamspace.agents.rfb_auth import (
    GREETING,
    RfbError,
    ServerLogin,
    ViewerGreeting,
    derived_secret,
    new_secret,
    vnc_des,
)

# VNC's fixed key for password files; `x11vnc -storepasswd PASSWORD FILE` (the session
# image's x11vnc) writes DES(key=that, data=PASSWORD padded to 8): known vectors for vnc_des.
PASSWD_FILE_KEY = bytes([23, 82, 107, 6, 35, 78, 88, 7])
CHALLENGE = bytes(range(16))
SECRET = "s3cr3t!x"
U32 = struct.Struct(">I")


def feed_bytewise(login: ServerLogin, data: bytes) -> bytes:
    """A server's bytes one at a time: the machine must wait for whole fields."""
    return b"".join(login.receive(data[i : i + 1]) for i in range(len(data)))


@pytest.mark.parametrize(
    ("plain", "stored"),
    [(b"s3cr3t!x", "4030991209e257f9"), (b"ab\0\0\0\0\0\0", "f9b845297cb5d3f2")],
)
def test_vnc_des_matches_x11vnc(plain: bytes, stored: str) -> None:
    assert vnc_des(password=PASSWD_FILE_KEY, challenge=plain).hex() == stored


def test_a_new_secret_is_eight_printable_random_characters() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) == 8 and s.isprintable() and s.isascii() for s in secrets)


def test_login_to_a_3_8_server_answers_3_8_picks_vnc_auth_and_encrypts_the_challenge() -> None:
    login = ServerLogin(secret=SECRET)

    assert login.receive(b"RFB 003.008\n") == b"RFB 003.008\n"
    assert login.receive(bytes([2, 1, 2])) == bytes([2])
    assert feed_bytewise(login, CHALLENGE) == vnc_des(password=SECRET.encode(), challenge=CHALLENGE)
    assert not login.done
    assert login.receive(U32.pack(0)) == b""
    assert login.done and login.leftover() == b""


def test_login_to_a_newer_server_answers_3_8_and_to_a_3_3_server_answers_3_3() -> None:
    assert ServerLogin(secret=SECRET).receive(b"RFB 003.889\n") == b"RFB 003.008\n"
    login = ServerLogin(secret=SECRET)
    assert login.receive(b"RFB 003.003\n") == b"RFB 003.003\n"
    answer = login.receive(U32.pack(2) + CHALLENGE)  # 3.3: the server picks, as a u32
    assert answer == vnc_des(password=SECRET.encode(), challenge=CHALLENGE)
    login.receive(U32.pack(0))
    assert login.done


def test_a_wrong_password_is_a_clear_error_with_the_servers_reason_and_no_secret() -> None:
    login = ServerLogin(secret=SECRET)
    login.receive(b"RFB 003.008\n" + bytes([1, 2]) + CHALLENGE)
    reason = b"password check failed!"

    with pytest.raises(RfbError) as caught:
        feed_bytewise(login, U32.pack(1) + U32.pack(len(reason)) + reason)

    assert "rejected the agent's VNC password: password check failed!" in caught.value.message
    assert SECRET not in caught.value.message


def test_a_wrong_password_on_a_3_7_server_fails_without_a_reason() -> None:
    login = ServerLogin(secret=SECRET)
    login.receive(b"RFB 003.007\n" + bytes([1, 2]) + CHALLENGE)
    with pytest.raises(RfbError, match=r"rejected the agent's VNC password$"):
        login.receive(U32.pack(1))


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (b"HTTP/1.1 400 ", "did not send an RFB version"),
        (b"RFB 003.008\n" + bytes([1, 1]), r"does not offer VNC Authentication .*\[1\]"),
        (b"RFB 003.008\n\0" + U32.pack(9) + b"too many ", "refused the connection: too many"),
        (b"RFB 003.003\n" + U32.pack(1), "chose security type 1"),
    ],
)
def test_bad_server_answers_are_clear_errors(server: bytes, message: str) -> None:
    with pytest.raises(RfbError, match=message):
        ServerLogin(secret=SECRET).receive(server)


def test_a_3_8_viewer_gets_none_offered_and_a_security_result_then_bytes_pass_through() -> None:
    greeting = ViewerGreeting()

    assert greeting.receive(b"RFB 003.") == (b"", b"")
    assert greeting.receive(b"008\n") == (bytes([1, 1]), b"")
    # the choice, the ClientInit and more in one read: only what follows the choice passes on
    assert greeting.receive(b"\x01\x01\x02") == (U32.pack(0), b"\x01\x02")
    assert greeting.done
    assert greeting.receive(b"keys") == (b"", b"keys")
    assert GREETING == b"RFB 003.008\n"


def test_a_3_7_viewer_gets_the_list_and_no_security_result() -> None:
    greeting = ViewerGreeting()
    assert greeting.receive(b"RFB 003.007\n") == (bytes([1, 1]), b"")
    assert greeting.receive(b"\x01\x01") == (b"", b"\x01")
    assert greeting.done


def test_a_3_3_viewer_gets_the_type_as_a_u32_and_chooses_nothing() -> None:
    greeting = ViewerGreeting()
    assert greeting.receive(b"RFB 003.003\n\x01") == (U32.pack(1), b"\x01")
    assert greeting.done


@pytest.mark.parametrize(
    ("viewer", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "viewer did not send an RFB version"),
        (b"RFB 003.008\n\x02", "viewer chose security type 2"),
    ],
)
def test_bad_viewer_answers_are_clear_errors(viewer: bytes, message: str) -> None:
    with pytest.raises(RfbError, match=message):
        ViewerGreeting().receive(viewer)


def test_derived_secrets_are_per_seed_and_session_and_stable() -> None:
    seed = "x" * 32
    first = derived_secret(seed=seed, session_id="s1")
    assert first == derived_secret(seed=seed, session_id="s1")  # any replica finds it again
    assert len(first) == 8 and first.isprintable()
    assert first != derived_secret(seed=seed, session_id="s2")
    assert first != derived_secret(seed="y" * 32, session_id="s1")
