"""Webhooks: subscriptions to outbox events, and their signed, retried deliveries."""
