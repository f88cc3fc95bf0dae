"""The stream workers: the core wrapped in Faust agents on Kafka."""
