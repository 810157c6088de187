"""Socket helpers both sides use (WebSocket frame headers, a link's read and write halves);
they import neither the control plane nor the agents."""
