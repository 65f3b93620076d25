"""TTTranscribe core: everything the HTTP handlers share. Knows nothing of Flask except core/http.py."""
