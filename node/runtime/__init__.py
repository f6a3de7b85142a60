"""The node's runtime: the event loop, peer transport, mempool and application."""
