"""Settings pieces shared by the services."""

from jobrelay.config.settings import KafkaSettings, ObservabilitySettings, TopicSettings

__all__ = ["KafkaSettings", "ObservabilitySettings", "TopicSettings"]
