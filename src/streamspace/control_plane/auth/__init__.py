"""Authentication: password hashing, login tokens, server-side login sessions, throttling."""
