"""The shapes the faces and the service share: request and answer models, input parsing, the
written forms of codes."""
