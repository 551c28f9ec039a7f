"""The verifiable log as the read side keeps it: the Merkle tree over every event, the signed
checkpoints and the keys that signed them, and the checks of the tree against the events."""
