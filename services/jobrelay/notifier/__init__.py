"""The notifier service: signed, retried, SSRF-safe webhooks for completed jobs."""
