"""Where containers run: a Docker engine, or plain processes on this machine."""
