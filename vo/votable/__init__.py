"""VOTable writers shared by every protocol (TAP, SIA, DataLink, errors)."""
