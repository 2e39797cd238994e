"""CDS Hooks 2.0 protocol layer: discovery, hook calls, prefetch, FHIR fetch, auth, feedback."""
