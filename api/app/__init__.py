"""The application layer the faces share: the service and its questions, settings and wiring,
tokens, the notary, import/export, the bundled timeline, webhooks."""
