"""The command line and the tools around a node: devnet, demo, launch."""
