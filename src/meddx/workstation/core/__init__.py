"""Configuration and security primitives of the workstation."""
