"""Webhook subscriptions: the registry, deliveries, the signed sender and its allowed targets."""
