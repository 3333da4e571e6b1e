"""Process-wide configuration: settings from OUTREACH_* variables, names, logging, data converter."""
