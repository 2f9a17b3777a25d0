"""Models shipped with the gateway: artefacts of training/, read as package data."""
