"""deploy/nginx sends the UI it serves with the security headers the control plane sends with
the UI it serves itself: the same Content-Security-Policy, in every location that adds headers
(nginx inherits none into a location with an add_header of its own)."""

from __future__ import annotations

import re
from pathlib import Path

from streamspace.control_plane.asgi.headers import UI_CSP

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "streamspace.conf"


def test_nginx_sends_the_uis_policy_wherever_it_adds_headers() -> None:
    text = CONF.read_text()
    locations = re.findall(r"location [^{]+\{[^}]*\}", text)
    adding = [block for block in locations if "add_header" in block]
    assert len(adding) >= 2  # /assets/ and /
    for block in adding:
        assert f'add_header Content-Security-Policy "{UI_CSP}" always;' in block, block
        assert 'add_header X-Content-Type-Options "nosniff" always;' in block
        assert 'add_header Referrer-Policy "no-referrer" always;' in block
        assert "add_header Strict-Transport-Security $streamspace_hsts always;" in block
