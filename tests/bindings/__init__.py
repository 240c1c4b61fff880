"""The bindings a Worker's ``env`` holds (KV, R2, ...) against their documented APIs."""
