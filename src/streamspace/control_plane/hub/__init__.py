"""The edge to the agents: the connections this replica holds, command routing and fencing,
heartbeats, pings, the replica directory, and the event hub the UI sockets listen to."""
