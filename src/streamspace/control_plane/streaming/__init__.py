"""The edge to the viewers: a session's VNC stream over the agent's socket, the relay between
replicas (the peer client), and the activity a viewer's input records."""
