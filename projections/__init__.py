"""The read side: read models built from the event log, and the queries they answer."""
