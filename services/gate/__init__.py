"""The gate: agencies' own Kafka producers write to their own input topic
(`care.events.in.<agency_id>`, writable by that agency's principal only); the gate checks that
each record is that agency's and forwards it, unchanged, to care.events.v1, or dead-letters it.
docs/agency-topics.md describes it for operators and agencies."""
