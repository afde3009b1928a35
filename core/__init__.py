"""Small shared helpers every Warden app builds on: errors, settings, actors, API plumbing."""
