"""The console's SQL read model, projected from Kafka (docs/console.md, "Read model")."""
