"""The agent envelope decoder on arbitrary input: it refuses with ProtocolError and nothing
else, and whatever it accepts survives being encoded and decoded again (as a relay does)."""

from __future__ import annotations

import json

import hypothesis
from hypothesis import strategies as st

from streamspace.errors import ProtocolError
from streamspace.protocol import MAX_MESSAGE_BYTES, decode, encode


@hypothesis.settings(max_examples=300, derandomize=True, database=None, deadline=None)
@hypothesis.given(
    frame=st.one_of(
        st.binary(max_size=512),
        st.text(max_size=512),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(json.dumps),
        st.fixed_dictionaries(
            {},
            optional={
                "v": st.integers() | st.text(max_size=3) | st.none(),
                "id": st.text(max_size=80) | st.integers(),
                "type": st.sampled_from(["command", "ping", "heartbeat", "ack", "x", ""]),
                "timestamp": st.floats() | st.text(max_size=5),
                "epoch": st.integers() | st.floats() | st.none(),
                "payload": st.dictionaries(st.text(max_size=5), st.integers())
                | st.lists(st.none()),
                "extra": st.integers(),
            },
        ).map(json.dumps),
    )
)
@hypothesis.example(frame='{"type": "ping", "timestamp": NaN}')
@hypothesis.example(frame='{"type": "ping", "payload": {"x": 1e400}}')
@hypothesis.example(frame=b'{"type": "ping", "id": "\xff"}')
@hypothesis.example(frame="[" * 100_000)
@hypothesis.example(frame='{"type": "ping", "payload": {"x": ' + "[" * 500 + "]" * 500 + "}}")
def test_envelope_decoder_only_raises_protocol_error(frame: str | bytes) -> None:
    try:
        envelope = decode(frame)
    except ProtocolError as exc:
        assert exc.code and exc.message
        return
    assert len(frame) <= MAX_MESSAGE_BYTES
    assert decode(encode(envelope)) == envelope  # what is accepted can be relayed
