"""The write side: sanctions streams, their events and the rules they obey."""
