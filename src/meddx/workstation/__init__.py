"""The clinician workstation: server, database, web UI, feedback."""
