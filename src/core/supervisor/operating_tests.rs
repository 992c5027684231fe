//! Placeholder: scenario tests for backoff, limits, restart, max_children, events, durable state and reload.
