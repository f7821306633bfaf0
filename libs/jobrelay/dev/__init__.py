"""Development helpers: the local Kafka broker."""
