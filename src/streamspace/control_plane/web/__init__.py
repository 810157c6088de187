"""What a browser loads from the control plane: the web UI's single-page app and the session
viewer page (noVNC)."""
