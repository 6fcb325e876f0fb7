"""The broker's published contracts (``handoff-context/v1``) and the script that generates them."""
