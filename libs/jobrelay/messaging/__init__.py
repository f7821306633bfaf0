"""Kafka and Avro: the codec, record headers, clients, topics, and the one consumer loop."""
